"""A small kustomize, enough for deploy/k8s and no more.

No kustomize binary is available from the registries this project may use (PyPI, Debian, npm),
so the deploy tests render the overlays with this. It implements exactly the fields our
kustomizations use, and refuses any other field rather than silently ignoring it:

- `resources`: YAML files, or directories holding a `kustomization.yaml`, rendered recursively;
- `namespace`: set on every resource (all of ours are namespaced);
- `labels` with `includeSelectors: false`: added to `metadata.labels`, and with
  `includeTemplates: true` also to the pod template of Deployments and Jobs;
- `images`: `newName` / `newTag` / `digest` for containers whose image name matches;
- `patches` with `path`: strategic-merge patches (one or several YAML documents per file),
  each applied to the resource with the same kind and name. Maps merge recursively (`null`
  deletes a key); lists of containers, env, volumes and volume mounts merge by their key, as
  Kubernetes' patchMergeKey says; any other list is replaced whole.

Where `kubectl` is installed, tests/deploy/test_kustomize_render.py checks that this renders
exactly what `kubectl kustomize` does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
)
# Field name -> the key its list items merge on (Kubernetes' patchMergeKey for these fields).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


class UnsupportedKustomization(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def render(directory: Path) -> list[Resource]:
    """Render the kustomization in `directory`, like `kustomize build directory`."""
    kustomization = _load_kustomization(directory)
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources.extend(render(path))
        else:
            resources.extend(load_documents(path))
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise UnsupportedKustomization(f"only `patches: - path:` is supported: {patch_entry}")
        for patch in load_documents(directory / patch_entry["path"]):
            target = _find(resources, patch)
            index = resources.index(target)
            resources[index] = strategic_merge(target, patch)
    for label_entry in kustomization.get("labels", []):
        _apply_labels(resources, label_entry)
    for image in kustomization.get("images", []):
        _apply_image(resources, image)
    if "namespace" in kustomization:
        for resource in resources:
            resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return resources


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document in `path`."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def strategic_merge(original: Any, patch: Any, field: str | None = None) -> Any:
    """`patch` merged into a copy of `original`, by the strategic-merge rules in the docstring."""
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(original)
        for key, value in patch.items():
            if isinstance(key, str) and key.startswith("$"):
                raise UnsupportedKustomization(f"patch directive {key} is not supported")
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(original, list) and isinstance(patch, list) and field in MERGE_KEYS:
        return _merge_list(original, patch, MERGE_KEYS[field])
    return copy.deepcopy(patch)


def _merge_list(original: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = copy.deepcopy(original)
    positions = {item[key]: index for index, item in enumerate(merged)}
    for item in patch:
        if item[key] in positions:
            index = positions[item[key]]
            merged[index] = strategic_merge(merged[index], item)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _load_kustomization(directory: Path) -> dict[str, Any]:
    documents = load_documents(directory / "kustomization.yaml")
    if len(documents) != 1:
        raise UnsupportedKustomization(f"{directory}: expected one kustomization document")
    kustomization = documents[0]
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{directory}: unsupported fields {sorted(unknown)}")
    return kustomization


def _find(resources: Iterable[Resource], patch: Resource) -> Resource:
    kind, name = patch["kind"], patch["metadata"]["name"]
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    if len(matches) != 1:
        raise UnsupportedKustomization(f"patch {kind}/{name} matches {len(matches)} resources")
    return matches[0]


def _apply_labels(resources: list[Resource], entry: dict[str, Any]) -> None:
    if entry.get("includeSelectors", False):
        raise UnsupportedKustomization("labels with includeSelectors: true are not supported")
    unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown:
        raise UnsupportedKustomization(f"unsupported label fields {sorted(unknown)}")
    pairs: dict[str, str] = entry["pairs"]
    for resource in resources:
        resource.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates", False) and resource["kind"] in POD_TEMPLATE_KINDS:
            template = resource["spec"]["template"]
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _apply_image(resources: list[Resource], image: dict[str, str]) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise UnsupportedKustomization(f"unsupported image fields {sorted(unknown)}")
    for resource in resources:
        if resource["kind"] not in POD_TEMPLATE_KINDS:
            continue
        pod = resource["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            name, tag, digest = split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
                continue
            tag = image.get("newTag", tag)
            reference = name if tag is None else f"{name}:{tag}"
            container["image"] = reference if digest is None else f"{reference}@{digest}"


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """`registry:5000/name:tag@sha256:...` -> (`registry:5000/name`, `tag`, `sha256:...`)."""
    name, _, digest = reference.partition("@")
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None
