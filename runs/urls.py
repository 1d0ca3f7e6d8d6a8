from django.urls import path
from rest_framework.routers import DefaultRouter

from runs.api import PlanNormalizeView, ProjectViewSet, RunViewSet

router = DefaultRouter()
router.register("runs", RunViewSet, basename="run")
router.register("projects", ProjectViewSet, basename="project")

urlpatterns = [
    path("plans/normalize/", PlanNormalizeView.as_view(), name="plan-normalize"),
    *router.urls,
]
