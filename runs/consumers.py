"""Websockets that push server-rendered fragments of the run pages as events happen."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer

from runs import access, dashboard
from runs.live import RUNS_GROUP, run_group


class RunConsumer(WebsocketConsumer):
    """One run page: on connect, everything after the page's last event; then each event."""

    def connect(self) -> None:
        user = self.scope.get("user")
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        authenticated = user is not None and user.is_authenticated
        self.run = access.runs(user).filter(run_id=run_id).first() if authenticated else None
        if self.run is None:
            self.close(code=4403)
            return
        self.user = user
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            self.last_id = int(query.get("after", ["0"])[0])
        except ValueError:
            self.last_id = 0
        self.group = run_group(run_id)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()
        self._send_update()

    def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def run_event(self, message: dict) -> None:
        if message["event_id"] > self.last_id:
            self._send_update()

    def _send_update(self) -> None:
        update = dashboard.fragments(self.run, self.user, self.last_id)
        self.last_id = update["last_id"]
        self.send(text_data=json.dumps(update))


class RunsListConsumer(WebsocketConsumer):
    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=4403)
            return
        self.user = user
        async_to_sync(self.channel_layer.group_add)(RUNS_GROUP, self.channel_name)
        self.accept()

    def disconnect(self, code: int) -> None:
        async_to_sync(self.channel_layer.group_discard)(RUNS_GROUP, self.channel_name)

    def runs_changed(self, message: dict) -> None:
        self.send(text_data=json.dumps(dashboard.list_fragment(access.runs(self.user))))
