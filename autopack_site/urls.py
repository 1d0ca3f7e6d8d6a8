from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from autopack_site.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/", include("runs.urls")),
]
