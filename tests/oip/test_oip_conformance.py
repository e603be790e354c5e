"""`modelreg serve` against the Open Inference Protocol v2 REST specification's own schemas.

open_inference_rest.yaml (beside this file) is the specification's OpenAPI document, vendored
unchanged with its licence (Apache 2.0) from the open-inference-protocol repository. Every path it
declares is requested for a binary, a multiclass (string classes) and a regression model, by version
number and by alias, and every answer is validated against the schema the document gives for that
path and status; the unversioned forms the prose defines (/v2/models/NAME, .../ready, .../infer) are
validated with the same schemas. Errors must be the document's error objects with a 4xx status.

Run by meson (test 'oip_conformance') with MODELREG_BIN set to the modelreg binary.
"""
import json
import os
import random
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml

HERE = Path(__file__).resolve().parent
SPEC = yaml.safe_load((HERE / "open_inference_rest.yaml").read_text(encoding="utf-8"))
MODELREG = os.environ.get("MODELREG_BIN", "modelreg")
FEATURES = 4


def validator(schema_name):
    """A validator of the document's components/schemas/<schema_name>, its $refs resolved in the document."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": SPEC["components"]}
    return jsonschema.Draft7Validator(root, resolver=jsonschema.RefResolver.from_schema(root))


def response_schema(template, method, status):
    """The schema name the document declares for (path template, method, status), or None."""
    operation = SPEC["paths"][template][method]
    response = operation["responses"].get(str(status))
    if response is None:
        return None
    content = response.get("content", {}).get("application/json")
    if not content:
        return None
    return content["schema"]["$ref"].rsplit("/", 1)[-1]


def check(schema_name, body):
    errors = sorted(validator(schema_name).iter_errors(body), key=lambda e: e.path)
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors)


def http(port, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def modelreg(db, *args):
    subprocess.run([MODELREG, "--db", str(db), *args], check=True, stdout=subprocess.DEVNULL, timeout=120)


def write_csv(path, target, rows=300, seed=1):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(f"f{i}" for i in range(FEATURES)) + ",y\n")
        for _ in range(rows):
            x = [rng.gauss(0, 1) for _ in range(FEATURES)]
            f.write(",".join(f"{v:.5f}" for v in x) + f",{target(x)}\n")


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = tmp / "r.db"
        write_csv(tmp / "binary.csv", lambda x: int(x[0] + x[1] > 0))
        write_csv(tmp / "multi.csv", lambda x: ["setosa", "versicolor", "virginica"][int(x[0] > 0) + int(x[1] > 0.5)])
        write_csv(tmp / "reg.csv", lambda x: f"{3 * x[0] - x[2] + 0.5:.5f}")
        for name, csv, kind in [("fraud", "binary.csv", "logistic_regression"), ("species", "multi.csv", "decision_tree"),
                                ("price", "reg.csv", "linear_regression")]:
            for seed in (1, 2):
                modelreg(db, "train", name, "--csv", str(tmp / csv), "--target", "y", "--type", kind, "--seed", str(seed))
            modelreg(db, "promote", f"{name}@1")
            modelreg(db, "alias", "set", f"{name}@2", "champion")
        log = open(tmp / "serve.log", "wb")
        proc = subprocess.Popen([MODELREG, "--db", str(db), "serve", "fraud", "species", "price", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=log)
        line = proc.stdout.readline().decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"no address in the first line: {line!r}"
        port = int(match.group(1))
        for _ in range(3000):  # until every model serves (a deadline, not a fixed sleep)
            if http(port, "GET", "/v2/health/ready")[0] == 200:
                break
            subprocess.run(["sleep", "0.01"], check=True)
        yield port
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        log.close()


def infer_body(rows=2, request_id=None, outputs=None, nested=False):
    data = [[0.1 * (r + 1) * (c - 1.5) for c in range(FEATURES)] for r in range(rows)]
    body = {"inputs": [{"name": "input", "shape": [rows, FEATURES], "datatype": "FP64",
                        "data": data if nested else [v for row in data for v in row]}]}
    if request_id is not None:
        body["id"] = request_id
    if outputs is not None:
        body["outputs"] = [{"name": n} for n in outputs]
    check("inference_request", body)  # what we send is what the document describes
    return body


def concrete(template, model, version):
    return template.replace("{MODEL_NAME}", model).replace("{MODEL_VERSION}", version)


def test_the_schemas_are_not_vacuous():
    with pytest.raises(jsonschema.ValidationError):
        validator("inference_response").validate({"model_name": "fraud"})  # no outputs
    with pytest.raises(jsonschema.ValidationError):
        validator("inference_response").validate({"model_name": "fraud", "outputs": [{"name": "x", "shape": [1],
                                                                                      "datatype": "FP64"}]})
    with pytest.raises(jsonschema.ValidationError):
        validator("metadata_server_response").validate({"name": "x", "version": "1"})
    with pytest.raises(jsonschema.ValidationError):
        validator("metadata_tensor").validate({"name": "x", "datatype": "FP64", "shape": [-1, "4"]})


@pytest.mark.parametrize("model", ["fraud", "species", "price"])
@pytest.mark.parametrize("version", ["1", "2", "champion", "active"])
def test_every_path_of_the_document_answers_with_its_schema(server, model, version):
    for template, operations in SPEC["paths"].items():
        for method in ("get", "post"):
            if method not in operations:
                continue
            path = concrete(template, model, version)
            body = infer_body(request_id=f"{model}-{version}") if method == "post" else None
            status, raw = http(server, method.upper(), path, body)
            declared = operations[method]["responses"]
            assert str(status) in declared, f"{method.upper()} {path}: {status} is not a declared status"
            schema = response_schema(template, method, status)
            if schema:
                check(schema, json.loads(raw))
            if template.endswith("/infer"):
                answer = json.loads(raw)
                assert answer["model_name"] == model
                assert answer["id"] == f"{model}-{version}"
                expected = {"1": "1", "active": "1", "2": "2", "champion": "2"}[version]
                assert answer["model_version"] == expected
                for output in answer["outputs"]:
                    size = 1
                    for d in output["shape"]:
                        size *= d
                    assert len(output["data"]) == size  # flat, row-major, as many as the shape says


@pytest.mark.parametrize("model", ["fraud", "species", "price"])
def test_the_unversioned_forms_use_the_same_schemas(server, model):
    for template, operations in SPEC["paths"].items():
        if "{MODEL_VERSION}" not in template:
            continue
        unversioned = template.replace("/versions/{MODEL_VERSION}", "")
        for method in ("get", "post"):
            if method not in operations:
                continue
            body = infer_body(request_id="u", nested=True) if method == "post" else None
            status, raw = http(server, method.upper(), concrete(unversioned, model, ""), body)
            assert status == 200, raw
            schema = response_schema(template, method, status)
            if schema:
                check(schema, json.loads(raw))


def test_server_metadata_and_health(server):
    status, raw = http(server, "GET", "/v2/")
    assert status == 200
    check("metadata_server_response", json.loads(raw))
    assert http(server, "GET", "/v2/health/live")[0] == 200
    assert http(server, "GET", "/v2/health/ready")[0] == 200


def test_model_metadata_describes_inputs_and_outputs_by_task(server):
    shapes = {"fraud": {"label": [-1], "probability": [-1]},
              "species": {"probabilities": [-1, 3], "label": [-1]},
              "price": {"prediction": [-1]}}
    for model, outputs in shapes.items():
        status, raw = http(server, "GET", f"/v2/models/{model}")
        assert status == 200
        meta = json.loads(raw)
        check("metadata_model_response", meta)
        assert meta["inputs"][0]["shape"] == [-1, FEATURES]
        assert {o["name"]: o["shape"] for o in meta["outputs"]} == outputs
        assert meta["versions"] == ["1"]


def test_requested_outputs_are_the_only_ones_returned(server):
    for model, name in [("fraud", "probability"), ("species", "label"), ("price", "prediction")]:
        status, raw = http(server, "POST", f"/v2/models/{model}/infer", infer_body(outputs=[name]))
        assert status == 200
        answer = json.loads(raw)
        check("inference_response", answer)
        assert [o["name"] for o in answer["outputs"]] == [name]
    status, raw = http(server, "POST", "/v2/models/species/infer", infer_body(outputs=["nonesuch"]))
    assert status == 400
    check("inference_error_response", json.loads(raw))
    assert "no output named 'nonesuch'" in json.loads(raw)["error"]


def test_string_classes_come_back_as_bytes_tensors(server):
    status, raw = http(server, "POST", "/v2/models/species/infer", infer_body(rows=3))
    assert status == 200
    outputs = {o["name"]: o for o in json.loads(raw)["outputs"]}
    assert outputs["label"]["datatype"] == "BYTES"
    assert set(outputs["label"]["data"]) <= {"setosa", "versicolor", "virginica"}
    assert outputs["probabilities"]["shape"] == [3, 3]


@pytest.mark.parametrize("path, body, status", [
    ("/v2/models/fraud/infer", {"inputs": []}, 400),
    ("/v2/models/fraud/infer", {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}, 400),
    ("/v2/models/fraud/infer", {"id": 42, "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                                                      "data": [1, 2, 3, 4]}]}, 400),
    ("/v2/models/fraud/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES",
                                            "data": ["a", "b", "c", "d"]}]}, 400),
    ("/v2/models/fraud/infer", {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3]}]}, 400),
    ("/v2/models/ghost/infer", None, 404),
    ("/v2/models/fraud/versions/99/infer", None, 404),
    ("/v2/models/fraud/versions/nosuch/infer", None, 404),
])
def test_errors_are_the_documents_error_objects(server, path, body, status):
    got, raw = http(server, "POST", path, body if body is not None else infer_body())
    assert got == status
    error = json.loads(raw)
    check("inference_error_response", error)
    assert isinstance(error["error"], str) and error["error"]


def test_metadata_errors_are_error_objects(server):
    for path in ("/v2/models/ghost", "/v2/models/fraud/versions/99"):
        status, raw = http(server, "GET", path)
        assert status == 404
        check("metadata_model_error_response", json.loads(raw))
