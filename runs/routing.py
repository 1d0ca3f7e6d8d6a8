from django.urls import path

from runs.consumers import RunConsumer, RunsListConsumer

websocket_urlpatterns = [
    path("ws/runs/", RunsListConsumer.as_asgi()),
    path("ws/runs/<slug:run_id>/", RunConsumer.as_asgi()),
]
