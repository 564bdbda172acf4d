"""A tiny deterministic stand-in for ``sentence-transformers/all-MiniLM-L6-v2``, laid into an HF cache.

The real server always loads ``SentenceTransformer("all-MiniLM-L6-v2")`` at start-up and dies
offline without it. This module builds a ~200 KB model with the same module layout
(``models.Transformer`` over a 2-layer BERT + mean ``models.Pooling`` + ``models.Normalize``) from a
WordPiece vocabulary written here, with a fixed seed, once (cached under
``~/.cache/praxis-real/models/<key>``), and copies it into ``$HF_HOME/hub`` the way the hub lays
out a download (``models--sentence-transformers--all-MiniLM-L6-v2/snapshots/<40 hex>/`` and
``refs/main``). Search results are meaningless; every code path of the server is the real one.

The build runs inside a Python that has sentence-transformers (a server venv); nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .venvs import CACHE_ROOT

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: Bump to invalidate cached models when the recipe changes.
RECIPE_VERSION = 1
HIDDEN = 32
LAYERS = 2
HEADS = 2
SEED = 0


def vocabulary() -> list[str]:
    """A small WordPiece vocabulary: specials, characters, ``##`` continuations and common words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    cont = ["##" + c for c in string.ascii_lowercase + string.digits]
    words = [
        "the",
        "and",
        "for",
        "with",
        "how",
        "what",
        "to",
        "of",
        "in",
        "is",
        "a",
        "test",
        "tests",
        "testing",
        "standard",
        "standards",
        "workflow",
        "workflows",
        "spec",
        "specs",
        "server",
        "search",
        "index",
        "python",
        "concurrency",
        "race",
        "lock",
        "error",
        "errors",
        "api",
        "design",
        "agent",
        "praxis",
        "os",
        "mcp",
        "query",
        "phase",
        "task",
        "file",
        "files",
    ]
    seen: list[str] = []
    for tok in specials + chars + cont + words:
        if tok not in seen:
            seen.append(tok)
    return seen


_BUILD = r"""
import json, os, sys, tempfile
from pathlib import Path
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast
from sentence_transformers import SentenceTransformer, models

out = Path(sys.argv[1]); spec = json.loads(sys.argv[2])
torch.manual_seed(spec["seed"])
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    (tmp / "vocab.txt").write_text("\n".join(spec["vocab"]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(tmp / "vocab.txt"), do_lower_case=True)
    cfg = BertConfig(vocab_size=len(spec["vocab"]), hidden_size=spec["hidden"],
                     num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
                     intermediate_size=spec["hidden"] * 2, max_position_embeddings=512)
    bert = BertModel(cfg)
    hf = tmp / "hf"
    bert.save_pretrained(hf)
    tok.save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=256)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
    st.save(str(out))
v = SentenceTransformer(str(out), device="cpu").encode("probe")
print(json.dumps({"dim": int(v.shape[0])}))
"""


def _spec() -> dict[str, object]:
    return {
        "vocab": vocabulary(),
        "hidden": HIDDEN,
        "layers": LAYERS,
        "heads": HEADS,
        "seed": SEED,
        "recipe": RECIPE_VERSION,
    }


def model_key() -> str:
    """Hash of the recipe (vocabulary, sizes, seed, builder code); names the cached model."""
    h = hashlib.sha256(json.dumps(_spec(), sort_keys=True).encode() + _BUILD.encode())
    return h.hexdigest()[:16]


def _find_python() -> str:
    """A Python with sentence-transformers: ``$PRAXIS_REAL_ST_PYTHON`` or any cached server venv."""
    env = os.environ.get("PRAXIS_REAL_ST_PYTHON")
    if env:
        return env
    for cand in sorted((CACHE_ROOT / "venvs").glob("*/bin/python")):
        if any(cand.parent.parent.glob("lib/python*/site-packages/sentence_transformers")):
            return str(cand)
    raise RuntimeError(
        "no Python with sentence-transformers: build a server venv first "
        "(harness.server_venv) or set PRAXIS_REAL_ST_PYTHON"
    )


def build_tiny_model(python: Optional[str] = None) -> Path:
    """Build (once) and return the cached model folder ``~/.cache/praxis-real/models/tiny-<key>``."""
    final = CACHE_ROOT / "models" / f"tiny-{model_key()}"
    if (final / "modules.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONHASHSEED="0")
    subprocess.run(
        [python or _find_python(), "-c", _BUILD, str(tmp), json.dumps(_spec())],
        check=True,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    os.rename(tmp, final)
    return final


def snapshot_id(model_dir: Path) -> str:
    """A 40-hex revision id derived from the model files' names and bytes (stable across builds)."""
    h = hashlib.sha1()
    for p in sorted(q for q in model_dir.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(model_dir)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def lay_into_hf_cache(model_dir: Path, hf_home: Path, repo_id: str = REPO_ID) -> Path:
    """Copy ``model_dir`` into ``hf_home/hub`` as the hub would store ``repo_id``; return the snapshot."""
    rev = snapshot_id(model_dir)
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / rev
    if not (snap / "modules.json").exists():
        tmp = snap.with_name(rev + f".partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model_dir, tmp)
        os.replace(tmp, snap) if not snap.exists() else shutil.rmtree(tmp)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snap


def tiny_model(hf_home: Path, *, python: Optional[str] = None) -> dict[str, str]:
    """Build (cached) the tiny model, lay it into ``hf_home`` as the hub would, and return the env
    the server needs: ``HF_HOME``, ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``."""
    lay_into_hf_cache(build_tiny_model(python), hf_home)
    return {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


if __name__ == "__main__":
    print(json.dumps(tiny_model(Path(sys.argv[1]))))
