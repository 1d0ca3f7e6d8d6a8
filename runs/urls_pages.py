from django.urls import path

from runs import views

urlpatterns = [
    path("", views.runs_list, name="runs-list"),
    path("runs/fragments/", views.runs_fragment, name="runs-fragment"),
    path("runs/new/", views.new_run, name="run-new"),
    path("runs/<slug:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<slug:run_id>/fragments/", views.run_fragments, name="run-fragments"),
    path("runs/<slug:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<slug:run_id>/resume/", views.run_resume, name="run-resume"),
    path("projects/", views.projects_list, name="projects"),
    path("projects/<int:pk>/", views.project_detail, name="project-detail"),
]
