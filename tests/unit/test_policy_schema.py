"""The JSON Schema is the policy's contract for editors and CI: valid 2020-12,
every key described, defaults that match what the loader fills in, unknown keys
rejected everywhere, and a generated reference that lists every key."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from jsonschema import Draft202012Validator

from reconciler.policy import policy_schema
from reconciler.policy.build import DEFAULT_FILTERS, DEFAULT_STORE_PATH
from reconciler.policy.model import Identity, Lifecycle, Placement, Safety, Tls, UserScope
from reconciler.policy.reference import reference_rows, render_reference

REPO = Path(__file__).resolve().parents[2]
CONDITIONAL = {"if", "then", "else", "not"}  # restrictions, not places where keys are declared


def declared_objects(schema: Any, path: str = "#") -> Iterator[tuple[str, dict]]:
    """Every object schema that declares properties, outside if/then/not."""
    if isinstance(schema, dict):
        if "properties" in schema:
            yield path, schema
        for key, value in schema.items():
            if key in CONDITIONAL:
                continue
            if key == "properties":
                for name, child in value.items():
                    yield from declared_objects(child, f"{path}/properties/{name}")
            else:
                yield from declared_objects(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from declared_objects(item, f"{path}/{index}")


def test_schema_is_valid_2020_12_with_id_and_title():
    schema = policy_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("policy.schema.json")
    assert schema["title"]


def test_repo_root_schemas_folder_is_the_packaged_schema():
    assert json.loads((REPO / "schemas" / "policy.schema.json").read_text()) == policy_schema()


def test_every_key_has_a_description():
    missing = [
        f"{path}/properties/{name}"
        for path, schema in declared_objects(policy_schema())
        for name, child in schema["properties"].items()
        if "description" not in child
    ]
    assert missing == []


def test_every_object_rejects_unknown_keys():
    open_objects = [
        path for path, schema in declared_objects(policy_schema()) if schema.get("additionalProperties") is not False
    ]
    assert open_objects == []


def test_defaults_in_schema_match_the_model_and_loader():
    schema = policy_schema()
    top = schema["properties"]
    directory = schema["$defs"]["directory"]["properties"]
    assert top["placement"]["properties"]["mode"]["default"] == Placement().mode
    assert top["placement"]["properties"]["root"]["default"] == Placement().root
    assert top["identity"]["properties"]["merge_by_email"]["default"] == Identity().merge_by_email
    assert top["identity"]["properties"]["adopt_unmanaged"]["default"] == Identity().adopt_unmanaged
    assert top["lifecycle"]["properties"]["when_out_of_scope"]["default"] == Lifecycle().when_out_of_scope
    assert top["lifecycle"]["properties"]["when_disabled"]["default"] == Lifecycle().when_disabled
    assert top["store"]["properties"]["path"]["default"] == DEFAULT_STORE_PATH
    for key in ("max_deactivations", "max_deletions"):
        default = top["safety"]["properties"][key]["default"]
        limit = getattr(Safety(), key)
        assert (default["count"], float(default["percent"])) == (limit.count, limit.percent)
    assert directory["tls"]["properties"]["verify"]["default"] == Tls().verify
    assert directory["tls"]["properties"]["start_tls"]["default"] == Tls().start_tls
    assert directory["users"]["properties"]["include_disabled"]["default"] == UserScope(()).include_disabled
    assert directory["users"]["properties"]["scope"]["default"] == UserScope(()).scope
    # the loader restates none of these: what the policy leaves out takes the model's default
    from reconciler.policy.model import AttributeMapping, Directory, ReviewMargin
    mapping = top["mapping"]["properties"]
    assert mapping["email"]["default"] == [t.text for t in AttributeMapping().email]
    assert mapping["display_name"]["default"] == AttributeMapping().display_name.text
    fields = {f.name: f.default for f in Directory.__dataclass_fields__.values()}
    for key in ("page_size", "allow_insecure_bind", "empty_result_expected"):
        assert directory[key]["default"] == fields[key], key
    margin = top["safety"]["properties"]["review_margin"]["default"]
    assert (margin["count"], float(margin["percent"])) == (ReviewMargin().count, ReviewMargin().percent)
    assert top["store"]["properties"]["state_dir"]["default"] == DEFAULT_STORE_PATH.split("/")[0]
    for flavour, (users_filter, groups_filter) in DEFAULT_FILTERS.items():
        assert users_filter in directory["users"]["properties"]["filter"]["description"]
        assert groups_filter in directory["groups"]["properties"]["filter"]["description"]


def test_reference_lists_every_declared_key():
    schema = policy_schema()
    names = {name for _, declared in declared_objects(schema) for name in declared["properties"]}
    rows = reference_rows(schema)
    listed = {key.rsplit(".", 1)[-1] for key, *_ in rows}
    assert names - listed == set()
    text = render_reference(schema)
    for key, _, default, description in rows:
        assert f"| `{key}` |" in text
    assert "| `directories.<name>.bind.password` | `${NAME}` reference |" in text
    assert "| `safety.max_deletions` | integer, `N%` string, {count, percent} or null | " \
           '`{"count": 50, "percent": 10}` |' in text

