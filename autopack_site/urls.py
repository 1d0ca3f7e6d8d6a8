from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from autopack_site.views import healthz
from governance import views as governance_views
from telemetry import bench_api, bench_views
from telemetry.api import UsageView
from telemetry.metrics import metrics
from telemetry.views import usage_page

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/usage/", UsageView.as_view(), name="api-usage"),
    path("api/bench/", bench_api.BenchList.as_view(), name="api-bench-list"),
    path("api/bench/compare/", bench_api.BenchCompare.as_view(), name="api-bench-compare"),
    path("api/bench/<str:bench_id>/", bench_api.BenchDetail.as_view(), name="api-bench-detail"),
    path(
        "api/bench/<str:bench_id>/tasks.csv",
        bench_api.BenchTasksCsv.as_view(),
        name="api-bench-csv",
    ),
    path("api/governance/", include("governance.urls")),
    path("api/", include("runs.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("governance/", governance_views.queue, name="governance-queue"),
    path("governance/<int:pk>/<str:decision>/", governance_views.decide, name="governance-decide"),
    path("usage/", usage_page, name="usage"),
    path("bench/", bench_views.bench_list, name="bench-list"),
    path("bench/compare/", bench_views.bench_compare, name="bench-compare"),
    path("bench/<slug:bench_id>/", bench_views.bench_detail, name="bench-detail"),
    path("", include("runs.urls_pages")),
]
