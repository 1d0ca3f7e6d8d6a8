from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from runs import services
from runs.models import Run

pytestmark = pytest.mark.django_db


def test_every_model_has_a_working_admin_list_with_filters_and_search(client, run_config):
    services.create_run(run_config, enqueue=False)
    client.force_login(get_user_model().objects.create_superuser("root", password="x-y-z-1"))

    for model in admin.site._registry:
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
        assert client.get(url, {"q": "notes"}).status_code == 200, url
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert client.get(change).status_code == 200, change
    run = Run.objects.get()
    page = client.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()
    assert "search-index" in page and "Cancel selected runs" not in page  # inline phases
    listing = client.get(reverse("admin:runs_run_changelist"), {"state__exact": "QUEUED"})
    assert "notes-search" in listing.content.decode()
