from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from autopack_site.views import healthz
from telemetry.api import UsageView
from telemetry.metrics import metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/usage/", UsageView.as_view(), name="usage"),
    path("api/governance/", include("governance.urls")),
    path("api/", include("runs.urls")),
]
