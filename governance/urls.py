from rest_framework.routers import DefaultRouter

from governance.api import GovernanceRequestViewSet

router = DefaultRouter()
router.register("requests", GovernanceRequestViewSet, basename="governance-request")

urlpatterns = router.urls
