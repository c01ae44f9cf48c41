"""The cluster material in infra/ is checked against the code it runs: every file parses, every
`python -m pipelines.build` command (manifests, batch script, README) uses only options Beam or babelbeam
defines, with valid values, every dask command uses real dask flags, every repository path exists, the worker
image installs exactly what pyproject.toml declares, and the Kubernetes objects reference each other
consistently. Nothing here needs Docker, kubectl, Slurm or a network."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import pipelines.options  # noqa: F401  (registers babelbeam's options with Beam's parser)
from pipelines.manifest import unknown_arguments
from pipelines.options import parse_stages
from transforms.config import BuildConfig

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
SBATCH = INFRA / "slurm" / "babelbeam.sbatch"
WORKER_DOCKERFILE = INFRA / "docker" / "Dockerfile"
FLEX_DOCKERFILE = INFRA / "dataflow" / "Dockerfile"
METADATA = INFRA / "dataflow" / "metadata.json"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SHELL_OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
ENVIRONMENT_TYPES = {"DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK"}
RUNNERS = {path.rsplit(".", 1)[1] for path in StandardOptions.ALL_KNOWN_RUNNERS} | {"DaskRunner"}


# --- helpers: pull commands out of shell text, YAML manifests, Markdown and Dockerfiles ------------------


def _expand_if_set(token: str) -> str:
    """`${VAR:+word}` is `word` when VAR is set: check the command as it runs with the option given."""
    match = re.fullmatch(r"\$\{\w+:\+(.*)\}", token)
    return match.group(1) if match else token


def shell_commands(script: str, *prefix: str) -> list[list[str]]:
    """Argument lists that follow `prefix` in a shell script, up to the end of each simple command."""
    text = script.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        tokens = list(lexer)
        for i in range(len(tokens) - len(prefix) + 1):
            if tuple(tokens[i:i + len(prefix)]) == prefix:
                args = []
                for token in tokens[i + len(prefix):]:
                    if token in SHELL_OPERATORS:
                        break
                    args.append(_expand_if_set(token))
                found.append(args)
    return found


def build_commands(script: str) -> list[list[str]]:
    return shell_commands(script, "python", "-m", "pipelines.build") + \
        shell_commands(script, "python3", "-m", "pipelines.build")


def markdown_code(path: Path) -> str:
    return "\n".join(re.findall(r"^```[a-z]*\n(.*?)^```", path.read_text(encoding="utf-8"), re.M | re.S))


def k8s_documents() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d is not None]
            for p in sorted(K8S.glob("*.yaml"))}


def k8s_objects() -> list[dict]:
    return [d for name, docs in k8s_documents().items() if name != "kustomization.yaml" for d in docs]


def pod_specs(obj: dict) -> list[dict]:
    """Every pod spec in an object, however deeply nested (Deployment, CronJob...)."""
    found = []
    if isinstance(obj, dict):
        if "containers" in obj:
            found.append(obj)
        for value in obj.values():
            found += pod_specs(value)
    elif isinstance(obj, list):
        for value in obj:
            found += pod_specs(value)
    return found


def container_argv(container: dict) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def k8s_build_commands() -> list[tuple[dict, dict, list[str]]]:
    """(pod spec, container, pipelines.build arguments) for every container that runs the pipeline."""
    found = []
    for obj in k8s_objects():
        for spec in pod_specs(obj):
            for container in spec["containers"]:
                argv = container_argv(container)
                if argv[:2] in (["/bin/sh", "-c"], ["sh", "-c"], ["/bin/bash", "-c"]):
                    found += [(spec, container, args) for args in build_commands(argv[2])]
                elif argv[:3] in (["python", "-m", "pipelines.build"], ["python3", "-m", "pipelines.build"]):
                    found.append((spec, container, argv[3:]))
    return found


def all_build_commands() -> dict[str, list[list[str]]]:
    return {
        "infra/k8s": [args for _, _, args in k8s_build_commands()],
        "infra/slurm/babelbeam.sbatch": build_commands(SBATCH.read_text(encoding="utf-8")),
        "infra/README.md": build_commands(markdown_code(INFRA / "README.md")),
    }


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comment lines dropped."""
    instructions, current = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def copy_sources(args: str) -> tuple[list[str], str]:
    tokens = json.loads(args) if args.startswith("[") else shlex.split(args)
    tokens = [t for t in tokens if not t.startswith("--")]
    return tokens[:-1], tokens[-1]


def option_parser() -> _BeamArgumentParser:
    """The parser Beam builds in get_all_options: every registered PipelineOptions class, babelbeam's too."""
    import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers the DaskRunner's options)

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    return parser


def option_values(args: list[str], name: str) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith(f"--{name}="):
            values.append(arg.split("=", 1)[1])
    return values


# --- every file parses ----------------------------------------------------------------------------------


def test_every_infra_file_parses():
    files = sorted(p for p in INFRA.rglob("*") if p.is_file())
    assert files, "infra/ is empty"
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".yaml":
            assert [d for d in yaml.safe_load_all(text) if d is not None], path
        elif path.suffix == ".json":
            json.loads(text)
        elif path.suffix in (".sh", ".sbatch"):
            result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            assert result.returncode == 0, f"{path}: {result.stderr}"
        elif path.suffix == ".py":
            compile(text, str(path), "exec")
        elif path.name == "Dockerfile":
            assert dockerfile(path)[0][0] in ("FROM", "ARG"), path


# --- pipelines.build commands name real options with valid values ---------------------------------------


def test_the_extractor_finds_every_build_command():
    commands = all_build_commands()
    assert len(commands["infra/k8s"]) == 1
    assert len(commands["infra/slurm/babelbeam.sbatch"]) == 1
    runners = {v for args in commands["infra/README.md"] for v in option_values(args, "runner")}
    assert {"DaskRunner", "FlinkRunner", "SparkRunner", "PortableRunner", "DataflowRunner"} <= runners
    # the extractor keeps quoted words whole and stops at the end of the command
    assert shell_commands('x && python -m pipelines.build --output "a b/$(date)" ; echo --bogus',
                          "python", "-m", "pipelines.build") == [["--output", "a b/$(date)"]]


def test_the_option_check_catches_a_made_up_option():
    assert unknown_arguments(["--runner=FlinkRunner", "--flink_mastr=host:8081"]) == ["--flink_mastr"]


@pytest.mark.parametrize("source", ["infra/k8s", "infra/slurm/babelbeam.sbatch", "infra/README.md"])
def test_build_commands_use_only_real_options(source):
    for args in all_build_commands()[source]:
        assert unknown_arguments(args) == [], f"{source}: {shlex.join(args)}"
        try:  # argparse exits on a value outside an option's choices (--flink_version, --flexrs_goal...)
            options = PipelineOptions(args).get_all_options()
        except SystemExit:
            pytest.fail(f"{source}: invalid option value in {shlex.join(args)}")
        assert options["runner"] in RUNNERS, f"{source}: unknown runner {options['runner']}"
        parse_stages(options["stages"])
        assert options["input"] and options["output"] != pipelines.options.DEFAULT_OUTPUT, \
            f"{source}: a cluster command must name its input and output"
        if options["environment_type"] is not None:
            assert options["environment_type"] in ENVIRONMENT_TYPES, source
        if options["environment_type"] == "PROCESS":
            assert json.loads(options["environment_config"])["command"], source
        if options["environment_type"] == "EXTERNAL":
            assert re.fullmatch(r"[\w.-]+:\d+", options["environment_config"]), source
        if options["runner"] == "DaskRunner":
            assert options["address"] or options["scheduler_file"], f"{source}: no dask scheduler given"
        if options["runner"] == "DataflowRunner":
            assert options["project"] and options["region"] and options["temp_location"].startswith("gs://")
            assert options["sdk_container_image"], f"{source}: Dataflow workers need the babelbeam image"


# --- dask commands use real dask flags ------------------------------------------------------------------


def dask_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for obj in k8s_objects():
        for spec in pod_specs(obj):
            for container in spec["containers"]:
                argv = container_argv(container)
                if argv[:1] == ["dask"]:
                    found.append(("infra/k8s", argv[1], argv[2:]))
    sbatch = SBATCH.read_text(encoding="utf-8")
    for sub in ("scheduler", "worker"):
        found += [("infra/slurm/babelbeam.sbatch", sub, args) for args in shell_commands(sbatch, "dask", sub)]
    found += [("infra/README.md", sub, args) for sub in ("scheduler", "worker")
              for args in shell_commands(markdown_code(INFRA / "README.md"), "dask", sub)]
    return found


def test_dask_commands_use_real_flags():
    from distributed.cli import dask_scheduler, dask_worker

    commands = dask_commands()
    assert {(src, sub) for src, sub, _ in commands} >= {
        ("infra/k8s", "scheduler"), ("infra/k8s", "worker"),
        ("infra/slurm/babelbeam.sbatch", "scheduler"), ("infra/slurm/babelbeam.sbatch", "worker")}
    for source, sub, args in commands:
        cli = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}[sub]
        params = cli.make_context(f"dask {sub}", list(args)).params
        # `dask worker` passes flags it does not know to preload scripts instead of failing
        assert not params.get("preload_argv"), f"{source}: unknown dask {sub} flags {params['preload_argv']}"
        if sub == "worker":
            assert params["nthreads"] == 1, f"{source}: Beam bundles hold the GIL; scale with processes"
            assert params["scheduler"] or params["scheduler_file"], source


# --- repository paths -----------------------------------------------------------------------------------

REPO_PATH = re.compile(r"(?<![\w/.$-])(?:infra|pipelines|transforms|schemas|tools|tests)/[\w./-]*[\w]")


def test_every_referenced_repository_path_exists():
    referenced = set()
    for path in INFRA.rglob("*"):
        if path.is_file() and path.suffix != ".py":
            referenced |= {(path, m) for m in REPO_PATH.findall(path.read_text(encoding="utf-8"))}
    assert len(referenced) > 10
    missing = sorted(f"{p.relative_to(REPO)}: {ref}" for p, ref in referenced if not (REPO / ref).exists())
    assert not missing, missing
    for dockerfile_path in (WORKER_DOCKERFILE, FLEX_DOCKERFILE):
        for keyword, args in dockerfile(dockerfile_path):
            if keyword == "COPY" and "--from=" not in args:
                sources, _ = copy_sources(args)
                assert all((REPO / s).exists() for s in sources), (dockerfile_path, sources)


# --- the worker image matches pyproject.toml ------------------------------------------------------------


def test_worker_image_matches_pyproject():
    instructions = dockerfile(WORKER_DOCKERFILE)
    base = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(base) == 1, "one stage: the SDK image itself"
    match = re.fullmatch(r"apache/beam_python(\d+\.\d+)_sdk:(\d+\.\d+\.\d+)", base[0])
    assert match, f"base image {base[0]} is not Beam's Python SDK container"
    python, beam = match.groups()
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{python}.0"), python
    beam_pins = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]
                 if Requirement(r).name == "apache-beam"]
    assert len(beam_pins) == 1 and beam_pins[0].specifier.contains(beam), (beam, beam_pins)

    # what gets copied, and where
    workdir, copied = "/", {}
    for keyword, args in instructions:
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir, args))
        elif keyword == "COPY":
            sources, dest = copy_sources(args)
            for source in sources:
                copied[source.rstrip("/")] = str(PurePosixPath(workdir, dest))
        elif keyword == "RUN" and "pip install" in args:
            install_dir = workdir
            pip_args = shlex.split(args.split("pip install", 1)[1].split("&&")[0])
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages == {"pipelines", "transforms", "schemas", "tools"}
    required = packages | {"pyproject.toml", PYPROJECT["project"]["readme"]}
    assert required <= set(copied), f"not copied: {sorted(required - set(copied))}"
    assert all(copied[r] in (install_dir, str(PurePosixPath(install_dir, r))) for r in required), copied

    # it installs the project itself, not a hand-written package list that could drift from pyproject.toml
    installs = [a for k, a in instructions if k == "RUN" for part in a.split("&&") if "pip install" in part]
    assert len(installs) == 1
    targets = [a for a in pip_args if not a.startswith("-")]
    assert targets == ["."], f"pip installs {targets}, not the project"
    assert "--no-cache-dir" in pip_args


def test_flex_template_image_launches_babelbeam():
    instructions = dockerfile(FLEX_DOCKERFILE)
    env = dict(re.findall(r'(\w+)="?([^"\s]+)"?', " ".join(a for k, a in instructions if k == "ENV")))
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    py_file = env["FLEX_TEMPLATE_PYTHON_PY_FILE"].replace("${WORKDIR}", args["WORKDIR"])
    copies = {dest: sources for k, a in instructions if k == "COPY" and "--from=" not in a
              for sources, dest in [copy_sources(a.replace("${WORKDIR}", args["WORKDIR"]))]}
    assert copies[py_file] == ["infra/dataflow/launch.py"]
    assert ("ENTRYPOINT", '["/opt/apache/beam/boot"]') in instructions
    assert any(k == "COPY" and "/opt/google/dataflow/python_template_launcher" in a for k, a in instructions)
    launch = ast.parse((INFRA / "dataflow" / "launch.py").read_text(encoding="utf-8"))
    imported = {(n.module, a.name) for n in ast.walk(launch) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("pipelines.build", "run") in imported
    build = ast.parse((REPO / "pipelines" / "build.py").read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in build.body)


# --- Dataflow template parameters are real options ------------------------------------------------------

PARAM_TYPES = {"TEXT", "GCS_READ_BUCKET", "GCS_WRITE_BUCKET", "GCS_READ_FILE", "GCS_WRITE_FILE",
               "GCS_READ_FOLDER", "GCS_WRITE_FOLDER"}


def test_dataflow_metadata_parameters_are_real_options():
    metadata = json.loads(METADATA.read_text(encoding="utf-8"))
    assert metadata["name"] and metadata["description"]
    params = metadata["parameters"]
    names = [p["name"] for p in params]
    assert len(names) == len(set(names))
    assert {"input", "output"} <= set(names)
    actions = option_parser()._option_string_actions
    for param in params:
        assert param["label"] and param["helpText"], param["name"]
        assert param.get("paramType", "TEXT") in PARAM_TYPES, param["name"]
        assert param.get("isOptional", False) is (param["name"] not in ("input", "output")), param["name"]
        action = actions.get(f"--{param['name']}")
        assert action is not None, f"{param['name']} is not a Beam or babelbeam option"
        assert action.nargs != 0, f"{param['name']} is a flag: a template parameter must take a value"
        regexes = [re.compile(r) for r in param.get("regexes", [])]
        for choice in action.choices or []:  # the template must accept every value the option accepts
            assert all(r.search(choice) for r in regexes), (param["name"], choice)
    stages = next(p for p in params if p["name"] == "stages")["regexes"][0]
    assert re.search(stages, "langid,dedup") and not re.search(stages, "langid,dedupe")


# --- Kubernetes objects are consistent ------------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_one_image():
    docs = k8s_documents()
    kustomization = docs["kustomization.yaml"][0]
    assert sorted(kustomization["resources"]) == sorted(n for n in docs if n != "kustomization.yaml")
    image_names = {i["name"] for i in kustomization["images"]}
    for obj in k8s_objects():
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]
        for spec in pod_specs(obj):
            for container in spec["containers"]:
                assert container["image"] in image_names, container["name"]
                requests = container["resources"]["requests"]
                assert requests["cpu"] and requests["memory"], container["name"]


def test_k8s_references_resolve():
    objects = k8s_objects()
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    for obj in objects:
        for spec in pod_specs(obj):
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for container in spec["containers"]:
                for mount in container.get("volumeMounts", []):
                    volume = volumes[mount["name"]]
                    if "persistentVolumeClaim" in volume:
                        assert volume["persistentVolumeClaim"]["claimName"] in by_kind["PersistentVolumeClaim"]
                    if "configMap" in volume:
                        assert volume["configMap"]["name"] in by_kind["ConfigMap"]
    pod_labels = [spec_parent["metadata"]["labels"] for d in by_kind["Deployment"].values()
                  for spec_parent in [d["spec"]["template"]]]
    for service in by_kind["Service"].values():
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), service["metadata"]["name"]
    cron = next(iter(by_kind["CronJob"].values()))
    assert len(cron["spec"]["schedule"].split()) == 5
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def _service_port(address: str) -> None:
    host, port = re.fullmatch(r"tcp://([\w.-]+):(\d+)", address).groups()
    services = {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "Service"}
    assert host in services, f"{address}: no Service {host}"
    assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}, address


def test_driver_and_workers_share_the_scheduler_and_the_data_volume():
    (spec, driver, args), = k8s_build_commands()
    _service_port(option_values(args, "dask_client_address")[0])
    workers = [(s, c) for o in k8s_objects() for s in pod_specs(o) for c in s["containers"]
               if container_argv(c)[:2] == ["dask", "worker"]]
    assert workers
    for _, worker in workers:
        _service_port(worker["args"][0])

    def claims(pod_spec, container):
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        return {volumes[m["name"]]["persistentVolumeClaim"]["claimName"]: m["mountPath"]
                for m in container.get("volumeMounts", []) if "persistentVolumeClaim" in volumes[m["name"]]}

    driver_claims = claims(spec, driver)
    for worker_spec, worker in workers:  # workers write the shards: same files at the same path
        assert claims(worker_spec, worker) == driver_claims
    data_paths = [*option_values(args, "input"), *option_values(args, "output")]
    assert all(any(p.startswith(m + "/") for m in driver_claims.values()) for p in data_paths), data_paths


def test_configmap_config_validates_and_is_the_one_the_driver_reads():
    (spec, driver, args), = k8s_build_commands()
    config_path = PurePosixPath(option_values(args, "config")[0])
    volumes = {v["name"]: v for v in spec["volumes"]}
    mount = next(m for m in driver["volumeMounts"] if PurePosixPath(m["mountPath"]) == config_path.parent)
    config_map_name = volumes[mount["name"]]["configMap"]["name"]
    config_map = next(o for o in k8s_objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == config_map_name)
    raw = yaml.safe_load(config_map["data"][config_path.name])
    config = BuildConfig.model_validate(raw)
    assert config.model_dump(exclude_unset=True).keys() == raw.keys()


# --- Slurm ----------------------------------------------------------------------------------------------


def test_sbatch_directives_come_before_the_first_command():
    """sbatch stops reading #SBATCH lines at the first command: a directive after it is silently ignored."""
    lines = SBATCH.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert directives and max(directives) < first_command
    (args,) = build_commands("\n".join(lines))
    assert option_values(args, "dask_scheduler_file") == ['$SCHEDULER_FILE']
    (scheduler,) = shell_commands("\n".join(lines), "dask", "scheduler")
    (worker,) = shell_commands("\n".join(lines), "dask", "worker")
    assert option_values(scheduler, "scheduler-file") == option_values(worker, "scheduler-file") == ['$SCHEDULER_FILE']


def test_readme_build_commands_use_only_real_options():
    commands = build_commands(markdown_code(REPO / "README.md"))
    assert {"FlinkRunner", "SparkRunner", "DataflowRunner", "DaskRunner"} <= {
        v for args in commands for v in option_values(args, "runner")}
    for args in commands:
        assert unknown_arguments(args) == [], f"README.md: {shlex.join(args)}"
        try:
            PipelineOptions(args).get_all_options()
        except SystemExit:
            pytest.fail(f"README.md: invalid option value in {shlex.join(args)}")
