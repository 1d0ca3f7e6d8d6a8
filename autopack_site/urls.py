from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from autopack_site.views import healthz
from governance import views as governance_views
from telemetry.api import UsageView
from telemetry.metrics import metrics
from telemetry.views import usage_page

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/usage/", UsageView.as_view(), name="api-usage"),
    path("api/governance/", include("governance.urls")),
    path("api/", include("runs.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("governance/", governance_views.queue, name="governance-queue"),
    path("governance/<int:pk>/<str:decision>/", governance_views.decide, name="governance-decide"),
    path("usage/", usage_page, name="usage"),
    path("", include("runs.urls_pages")),
]
