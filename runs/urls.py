from rest_framework.routers import DefaultRouter

from runs.api import ProjectViewSet, RunViewSet

router = DefaultRouter()
router.register("runs", RunViewSet, basename="run")
router.register("projects", ProjectViewSet, basename="project")

urlpatterns = router.urls
