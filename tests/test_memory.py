"""Memory: entries embedded by the real built-in model (or an OpenAI-compatible endpoint),
recalled by meaning and by words within the projects that may see them, code indexed
without embedding the same chunk twice, stale vectors re-embedded, old entries pruned."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from memory import services
from memory.checks import embeddings_configuration
from memory.embeddings import EmbeddingError, LocalEmbedder, embedder
from memory.models import LearnedRule, Memory
from memory.services import Chunk
from memory.tasks import PRUNE_SCHEDULE, ensure_schedule, prune_memory
from memory.vectors import by_distance
from runs.models import Project, Run
from tests.support import ROOT

pytestmark = pytest.mark.django_db

YAML_FIX = (
    "ModuleNotFoundError: No module named 'yaml'",
    "The tests imported yaml, which was not installed; adding PyYAML to the project's "
    "dependencies in pyproject.toml fixed it.",
)
# Shares no word with YAML_FIX once stemmed and stop words are dropped.
YAML_QUESTION = "python cannot import a missing third-party package for parsing config files"
UNRELATED = [
    ("Bake the bread longer", "Forty minutes at two hundred degrees gave a crisp crust."),
    ("Sidebar margin", "The CSS margin of the sidebar was increased to sixteen pixels."),
    ("Typo in the README", "The word 'recieve' was corrected in the introduction."),
]


def project(name: str, *, share: bool = False) -> Project:
    return Project.objects.create(name=name, repository=f"/tmp/{name}", share_memory=share)


def make_run(owner: Project, run_id: str) -> Run:
    return Run.objects.create(
        project=owner, run_id=run_id, goal="g", integration_branch=f"autopack/{run_id}", config={}
    )


def titles(hits: list[services.Hit]) -> list[str]:
    return [hit.memory.title for hit in hits]


class FakeEmbeddings:
    """An OpenAI-compatible /v1/embeddings server on 127.0.0.1. Its vectors are the
    built-in model's cut to their first 64 dimensions (the model is trained so that its
    prefixes are embeddings too): real, deterministic, and of another dimension."""

    dim = 64

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {name.lower(): value for name, value in self.headers.items()}
                fake.requests.append({"path": self.path, "body": body, "headers": headers})
                if fake.status != 200 or self.path != "/v1/embeddings":
                    error = {"message": "embedding model overloaded", "type": "server_error"}
                    self._send(fake.status if fake.status != 200 else 404, {"error": error})
                    return
                vectors = np.asarray(LocalEmbedder().embed(body["input"]))[:, : fake.dim]
                data = [
                    {"object": "embedding", "index": i, "embedding": fake.encode(v, body)}
                    for i, v in enumerate(vectors)
                ]
                tokens = sum(len(text.split()) for text in body["input"])
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                    },
                )

            def _send(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def encode(vector: np.ndarray, body: dict):
        if body.get("encoding_format") == "base64":
            return base64.b64encode(vector.astype("<f4").tobytes()).decode()
        return vector.tolist()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def texts(self) -> list[str]:
        return [text for request in self.requests for text in request["body"]["input"]]


@pytest.fixture
def fake_embeddings(settings, monkeypatch):
    server = FakeEmbeddings()
    server.thread.start()
    monkeypatch.setenv("FAKE_EMBEDDINGS_KEY", "sk-fake-embeddings")
    yield server
    server.server.shutdown()
    server.server.server_close()


def use_endpoint(settings, server: FakeEmbeddings) -> None:
    settings.AUTOPACK_EMBEDDINGS_URL = server.url
    settings.AUTOPACK_EMBEDDINGS_MODEL = "fake-embed"
    settings.AUTOPACK_EMBEDDINGS_KEY_ENV = "FAKE_EMBEDDINGS_KEY"


def test_the_built_in_model_embeds_with_the_network_cut():
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n is not available here: cannot cut the network")
    script = """
import socket
from memory.embeddings import LocalEmbedder
try:
    socket.create_connection(("huggingface.co", 443), timeout=3)
    raise SystemExit("the network is reachable")
except OSError:
    pass
model = LocalEmbedder()
bug, same_bug, cake = model.embed([
    "ModuleNotFoundError: No module named yaml when the tests start",
    "importing the yaml package fails because it is not installed",
    "whisk the eggs with sugar and bake the cake for forty minutes",
])
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
print(model.dim, len(bug), round(dot(bug, bug), 4), dot(bug, same_bug) > dot(bug, cake) + 0.2)
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}  # no HuggingFace cache, no token
    result = subprocess.run(
        [unshare, "-n", sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["256", "256", "1.0", "True"]


def test_a_fix_is_recalled_by_meaning_and_only_where_memory_is_shared():
    a, b = project("alpha"), project("beta")
    fix = services.remember(a, "error_fix", *YAML_FIX)
    for title, text in UNRELATED:
        services.remember(a, "decision", title, text)
        services.remember(b, "decision", title, text)

    assert titles(services.recall(a, YAML_QUESTION, top_k=1)) == [fix.title]
    assert fix.title not in titles(services.recall(b, YAML_QUESTION))

    Project.objects.filter(pk=b.pk).update(share_memory=True)  # only beta opted in
    b.refresh_from_db()
    assert fix.title not in titles(services.recall(b, YAML_QUESTION))

    Project.objects.filter(pk=a.pk).update(share_memory=True)  # both
    assert titles(services.recall(b, YAML_QUESTION, top_k=1)) == [fix.title]
    assert services.visible_projects(b) == [b.id, a.id]


def test_recall_fuses_an_exact_word_match_with_a_match_by_meaning():
    p = project("gamma")
    lexical = services.remember(
        p, "error_fix", "Wheel build stopped with E1234", "Pinning setuptools below 70 fixed it."
    )
    semantic = services.remember(
        p,
        "error_fix",
        "PostgreSQL rejected the client's login",
        "The server was not accepting sessions yet; waiting for it to start fixed it.",
    )
    for title, text in UNRELATED:
        services.remember(p, "decision", title, text)

    hits = services.recall(p, "E1234 when the database connection is refused", top_k=2)

    by_title = {hit.memory.title: hit for hit in hits}
    assert set(by_title) == {lexical.title, semantic.title}
    assert by_title[lexical.title].text_rank == 1
    assert by_title[semantic.title].text_rank is None  # not one word in common
    assert by_title[semantic.title].vector_rank == 1
    assert all(hit.score > 0 for hit in hits)
    syntax = services.recall(p, "E1234 & !(yaml:* <-> 'refused' | \\", top_k=1)
    assert titles(syntax) == [lexical.title]  # words only: nothing read as tsquery syntax


def test_recall_leaves_out_code_and_the_current_run_unless_asked():
    p = project("delta")
    run = make_run(p, "delta-1")
    services.remember(p, "error_fix", *YAML_FIX, run=run)
    services.index_code(p, [Chunk("config.py", "load_yaml", 1, "def load_yaml(path): ...")])

    assert titles(services.recall(p, "yaml", kinds=["code"])) == ["load_yaml in config.py"]
    assert titles(services.recall(p, "yaml")) == [YAML_FIX[0]]
    assert services.recall(p, "yaml", exclude_run=run) == []


def test_the_same_content_again_is_touched_not_embedded_again(settings, fake_embeddings):
    use_endpoint(settings, fake_embeddings)
    p = project("epsilon")
    first = services.remember(p, "error_fix", *YAML_FIX)
    Memory.objects.filter(pk=first.pk).update(updated_at=timezone.now() - timedelta(days=3))
    run = make_run(p, "epsilon-2")

    again = services.remember(p, "error_fix", *YAML_FIX, run=run, meta={"phase": "two"})

    assert again.pk == first.pk and Memory.objects.count() == 1
    assert len(fake_embeddings.requests) == 1
    assert again.run == run and again.meta == {"phase": "two"}
    assert timezone.now() - again.updated_at < timedelta(minutes=1)
    assert fake_embeddings.requests[0]["headers"]["authorization"] == "Bearer sk-fake-embeddings"


def test_entries_of_another_model_are_embedded_again_and_never_compared(settings, fake_embeddings):
    a, other = project("zeta"), project("eta")
    fix = services.remember(a, "error_fix", *YAML_FIX)
    for title, text in UNRELATED:
        services.remember(a, "decision", title, text)
    services.remember(other, "error_fix", *YAML_FIX)  # not visible from zeta
    use_endpoint(settings, fake_embeddings)

    with CaptureQueriesContext(connection) as queries:
        hits = services.recall(a, YAML_QUESTION, top_k=1)

    assert titles(hits) == [fix.title]
    mine = Memory.objects.filter(project=a)
    assert set(mine.values_list("embedding_model", "embedding_dim")) == {("openai:fake-embed", 64)}
    assert all(len(m.embedding) == 64 for m in mine)
    assert set(fake_embeddings.texts()) == {f"{m.title}\n{m.text}" for m in mine} | {YAML_QUESTION}
    theirs = Memory.objects.get(project=other)
    assert (theirs.embedding_model, theirs.embedding_dim) == ("wordllama-l2_supercat-256", 256)
    vector_queries = [q["sql"] for q in queries.captured_queries if "<=>" in q["sql"]]
    assert len(vector_queries) == 1
    assert "::vector(64)" in vector_queries[0] and "vector(256)" not in vector_queries[0]
    assert '"embedding_dim" = 64' in vector_queries[0]
    assert "\"embedding_model\" = 'openai:fake-embed'" in vector_queries[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('memory_embedding_hnsw_64')")
        assert cursor.fetchone()[0] is not None  # made when the first 64-d vector was stored

    settings.AUTOPACK_EMBEDDINGS_URL = ""  # back to the built-in model: embedded once more
    assert titles(services.recall(a, YAML_QUESTION, top_k=1)) == [fix.title]
    assert set(mine.values_list("embedding_dim", flat=True)) == {256}


def test_an_endpoint_that_fails_is_named_in_the_error(settings, fake_embeddings):
    use_endpoint(settings, fake_embeddings)
    settings.AUTOPACK_LLM_MAX_RETRIES = 0
    fake_embeddings.status = 503

    with pytest.raises(EmbeddingError) as failure:
        services.remember(project("theta"), "error_fix", *YAML_FIX)

    message = str(failure.value)
    assert fake_embeddings.url in message and "'fake-embed'" in message and "503" in message
    assert Memory.objects.count() == 0


def test_embedding_settings_are_checked_when_a_process_starts(settings, monkeypatch):
    assert embeddings_configuration() == []
    settings.AUTOPACK_EMBEDDINGS_URL = "http://127.0.0.1:11434/v1"
    settings.AUTOPACK_EMBEDDINGS_KEY_ENV = "EMBEDDINGS_KEY_NOBODY_SET"
    monkeypatch.delenv("EMBEDDINGS_KEY_NOBODY_SET", raising=False)

    problems = embeddings_configuration()

    assert [(p.id, p.obj) for p in problems] == [
        ("autopack.E005", "AUTOPACK_EMBEDDINGS_MODEL"),
        ("autopack.E005", "AUTOPACK_EMBEDDINGS_KEY_ENV"),
    ]
    assert "EMBEDDINGS_KEY_NOBODY_SET" in problems[1].msg


CART = "def total(cart):\n    return sum(item.price * item.quantity for item in cart)\n"
LOADER = "def load(path):\n    with open(path) as f:\n        return yaml.safe_load(f)\n"
SAVER = "def save(path, data):\n    with open(path, 'w') as f:\n        yaml.safe_dump(data, f)\n"


def test_code_is_embedded_only_when_it_changed():
    p = project("iota")
    chunks = [
        Chunk("shop/cart.py", "total", 1, CART),
        Chunk("shop/settings.py", "load", 1, LOADER),
        Chunk("shop/settings.py", "save", 5, SAVER),
    ]
    assert services.index_code(p, chunks) == 3
    assert services.index_code(p, chunks) == 0

    changed = [
        chunks[0],
        Chunk("shop/settings.py", "load", 3, LOADER),  # two lines further down
        Chunk("shop/settings.py", "save", 9, SAVER.replace("'w'", "'wt'")),
    ]
    assert services.index_code(p, changed) == 1
    assert Memory.objects.get(symbol="load").line == 3  # moved, not embedded again
    assert "'wt'" in Memory.objects.get(symbol="save").text

    assert services.index_code(p, changed[:2]) == 0  # `save` was removed
    code = Memory.objects.filter(project=p, kind="code")
    assert sorted(code.values_list("path", "symbol")) == [
        ("shop/cart.py", "total"),
        ("shop/settings.py", "load"),
    ]
    assert services.index_code(p, [], paths=["shop/cart.py"]) == 0  # the file is gone
    assert list(code.values_list("symbol", flat=True)) == ["load"]


def test_code_scores_rank_files_by_meaning():
    p = project("kappa")
    services.index_code(
        p,
        [
            Chunk("shop/cart.py", "total", 1, CART),
            Chunk("shop/settings.py", "load", 1, LOADER),
            Chunk("shop/settings.py", "save", 5, SAVER),
        ],
    )

    scores = services.code_scores(p, "read the YAML configuration file from disk")

    assert set(scores) == {"shop/cart.py", "shop/settings.py"}
    assert scores["shop/settings.py"] > scores["shop/cart.py"]
    assert all(-1 <= score <= 1 for score in scores.values())
    only = services.code_scores(p, "read the YAML configuration file", paths=["shop/cart.py"])
    assert list(only) == ["shop/cart.py"]


def test_entries_older_than_the_ttl_are_pruned_daily(settings):
    settings.AUTOPACK_MEMORY_TTL_DAYS = 30
    p = project("lambda")
    old = services.remember(p, "decision", *UNRELATED[0])
    fresh = services.remember(p, "decision", *UNRELATED[1])
    Memory.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=31))

    assert prune_memory() == 1
    assert list(Memory.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert services.prune(now=timezone.now() + timedelta(days=31)) == 1

    ensure_schedule()
    ensure_schedule()
    schedule = Schedule.objects.get(name=PRUNE_SCHEDULE)
    assert (schedule.func, schedule.schedule_type) == ("memory.tasks.prune_memory", "D")


def test_vector_search_uses_the_hnsw_index_of_its_dimension():
    a, b = project("mu", share=True), project("nu", share=True)
    for title, text in UNRELATED:
        services.remember(a, "decision", title, text)
    current = embedder()
    vector = current.embed([YAML_QUESTION])[0]
    visible = Memory.objects.filter(project_id__in=services.visible_projects(b))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the test's own transaction

    plan = by_distance(visible.exclude(kind="code"), current.name, vector)[:50].explain()

    assert "Index Scan using memory_embedding_hnsw_256" in plan, plan


def test_an_embedding_of_another_dimension_gets_its_own_index(settings, fake_embeddings):
    use_endpoint(settings, fake_embeddings)
    p = project("xi")
    services.remember(p, "decision", *UNRELATED[0])
    vector = embedder().embed([YAML_QUESTION])[0]
    assert (embedder().name, embedder().dim, len(vector)) == ("openai:fake-embed", 64, 64)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")

    plan = by_distance(Memory.objects.filter(project=p), "openai:fake-embed", vector).explain()

    assert "Index Scan using memory_embedding_hnsw_64" in plan, plan


@pytest.mark.django_db(transaction=True)
def test_learned_rules_keep_their_rows_when_they_move_to_memory():
    before = [("governance", "0001_initial"), ("memory", None)]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        others = [node for node in latest if node[0] not in ("governance", "memory")]
        old = executor.loader.project_state([before[0], *others]).apps
        owner = old.get_model("runs", "Project").objects.create(name="old", repository="/x")
        old.get_model("governance", "LearnedRule").objects.create(
            project=owner, signature="abc", failure="E1234", hint="Pin setuptools", occurrences=3
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    rule = LearnedRule.objects.get()
    assert (rule.project.name, rule.hint, rule.occurrences) == ("old", "Pin setuptools", 3)
    assert rule._meta.db_table == "memory_learnedrule"


def test_memory_and_governance_models_match_their_migrations():
    call_command("makemigrations", "memory", "governance", "--check", "--dry-run", verbosity=0)
