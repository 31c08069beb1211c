"""Our small kustomize (kustomize_render.py) does what kustomize does, for what we use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.kustomize_render import (
    Resource,
    UnsupportedKustomization,
    render,
    split_image,
    strategic_merge,
)
from tests.deploy.support import OVERLAYS, ROOT


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: example/web:1
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
          args: [serve, --fast]
"""


def test_overlay_patches_labels_images_and_namespace(tmp_path: Path) -> None:
    write(tmp_path / "base/deployment.yaml", DEPLOYMENT)
    write(tmp_path / "base/kustomization.yaml", "resources: [deployment.yaml]\n")
    write(
        tmp_path / "overlay/kustomization.yaml",
        """\
namespace: prod
resources: [../base]
labels: [{pairs: {env: prod}, includeSelectors: false, includeTemplates: true}]
images: [{name: example/web, newName: registry.test/web, newTag: "2"}]
patches: [{path: patch.yaml}]
""",
    )
    write(
        tmp_path / "overlay/patch.yaml",
        """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: web
          env: [{name: B, value: "3"}, {name: C, value: "4"}]
          args: [serve]
""",
    )

    [deployment] = render(tmp_path / "overlay")

    assert deployment["metadata"] == {
        "name": "web",
        "namespace": "prod",
        "labels": {"app": "web", "env": "prod"},
    }
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web", "env": "prod"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.test/web:2"
    assert container["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert container["args"] == ["serve"]


def test_null_in_a_patch_deletes_the_key() -> None:
    assert strategic_merge({"a": 1, "b": {"c": 2}}, {"b": None, "d": 3}) == {"a": 1, "d": 3}


def test_lists_without_a_merge_key_are_replaced() -> None:
    original: Resource = {"spec": {"egress": [{"ports": [{"port": 587}]}]}}
    patch: Resource = {"spec": {"egress": [{"ports": [{"port": 1025}]}]}}
    assert strategic_merge(original, patch) == patch


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("gatehouse/auth", ("gatehouse/auth", None, None)),
        ("registry:5000/gatehouse/auth:1.2", ("registry:5000/gatehouse/auth", "1.2", None)),
        ("python:3.11@sha256:ab", ("python", "3.11", "sha256:ab")),
    ],
)
def test_image_references_split_into_name_tag_digest(
    reference: str, parts: tuple[str, str | None, str | None]
) -> None:
    assert split_image(reference) == parts


def test_unsupported_features_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "kustomization.yaml", "namePrefix: dev-\nresources: []\n")
    with pytest.raises(UnsupportedKustomization, match="namePrefix"):
        render(tmp_path)


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed"
)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renders_exactly_what_kubectl_kustomize_renders(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    output = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(output) if r}
    ours = {(r["kind"], r["metadata"]["name"]): r for r in rendered[overlay]}
    assert ours == theirs
