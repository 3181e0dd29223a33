"""Routes of the Scale-compatible API, mounted at /v1 (no trailing slashes, as Scale's client calls them).

Names are matched greedily up to a known suffix because the server decodes `%2F` before routing:
the client's `batches/a%2Fb/finalize` arrives as `batches/a/b/finalize`.
"""

from django.urls import re_path

from . import views as v

app_name = "scale"

NAME = r"(?P<name>.+?)"
TASK = r"(?P<task_id>[^/]+)"

urlpatterns = [
    re_path(r"^projects/?$", v.ProjectsView.as_view(), name="projects"),
    re_path(rf"^projects/{NAME}/setParams/?$", v.ProjectParamsView.as_view(), name="project-params"),
    re_path(rf"^projects/{NAME}/?$", v.ProjectView.as_view(), name="project"),
    re_path(r"^batches/?$", v.BatchesView.as_view(), name="batches"),
    re_path(rf"^batches/{NAME}/finalize/?$", v.BatchFinalizeView.as_view(), name="batch-finalize"),
    re_path(rf"^batches/{NAME}/status/?$", v.BatchStatusView.as_view(), name="batch-status"),
    re_path(rf"^batches/{NAME}/setMetadata/?$", v.BatchMetadataView.as_view(), name="batch-metadata"),
    re_path(rf"^batches/{NAME}/?$", v.BatchView.as_view(), name="batch"),
    re_path(r"^tasks/?$", v.TasksView.as_view(), name="tasks"),
    re_path(r"^task/(?P<task_id>\d+)/?$", v.TaskView.as_view(), name="task"),
    re_path(rf"^task/{TASK}/cancel/?$", v.TaskCancelView.as_view(), name="task-cancel"),
    re_path(rf"^task/{TASK}/audit/?$", v.TaskAuditView.as_view(), name="task-audit"),
    re_path(rf"^task/{TASK}/unique_id/?$", v.TaskUniqueIdView.as_view(), name="task-unique-id"),
    re_path(rf"^task/{TASK}/setMetadata/?$", v.TaskMetadataView.as_view(), name="task-metadata"),
    re_path(rf"^task/{TASK}/tags/?$", v.TagsView.as_view(), name="task-tags"),
    re_path(r"^task/(?P<task_type>[a-z]+)/?$", v.TaskCreateView.as_view(), name="task-create"),
    re_path(r"^(?P<rest>.*)$", v.NotSupportedView.as_view(), name="not-supported"),
]
