"""A screening run: shard a bulk export by patient, screen each partition on Dask, resume, summarise.

Layout under the output directory ``OUT``::

    OUT/screen.parquet            the result (one row per patient and target: indication or trial)
    OUT/summary.txt, summary.html the coordinator summary
    OUT/.work/<fingerprint>/shards/part-00000/<Type>.ndjson   the input, split by patient
    OUT/.work/<fingerprint>/parts/part-00000.parquet + .done  finished partitions

The fingerprint hashes the input files' bytes, the screening date, the partition size, the
actnav version and the knowledge version: a rerun with the same fingerprint skips every
partition whose ``.done`` marker exists (the Parquet part is written to a temporary name and
renamed before the marker is written, so a killed run never leaves a marker without its part).
Partitions are contiguous runs of patients in ``Patient.ndjson`` order, so the output order is
the input order whatever the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import hashlib
import html
import json
import logging
import os
import re
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from actnav import __version__
from actnav.errors import FhirImportError, InputError
from actnav.knowledge.loader import load_knowledge
from actnav.screen.records import BULK_TYPES, patient_id_of, record_from_resources
from actnav.screen.vector import SCHEMA, ScreenPlan, bundled_trials, select_trials

DEFAULT_PARTITION_SIZE = 2000
SHORT_LIST = 20
_KINDS = ("indication", "trial")  # the targets of the summary (not the ``record`` error rows)


@dataclass(frozen=True)
class ScreenResult:
    """What a run did: partitions screened now and skipped (already done), patients, rows,
    patients whose record could not be read (by message), and the output paths."""

    partitions: int
    screened: int
    skipped: int
    patients: int
    rows: int
    input_errors: dict[str, int]
    parquet: Path
    summary_text: Path
    summary_html: Path


def fingerprint(input_dir: Path, *, as_of: dt.date, partition_size: int, input_format: str = "fhir") -> str:
    """A hex digest of the input files' names and bytes (NDJSON, or OMOP tables), the run settings,
    the knowledge version and the bundled trial set's version (a changed trial or parser redoes
    every partition)."""
    from actnav.screen.omop import table_files
    from actnav.screen.vector import targets_version

    kb = load_knowledge()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(
        f"{__version__}|{max(p.version for p in kb.products)}|{targets_version()}|{as_of}|{partition_size}".encode()
    )
    if input_format == "omop":
        digest.update(b"omop")
        files = [(name, path) for name, path in table_files(input_dir).items()]
    else:
        files = [(rtype, input_dir / f"{rtype}.ndjson") for rtype in BULK_TYPES]
    for rtype, path in files:
        if not path.exists():
            continue
        digest.update(rtype.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _write_atomic_bytes(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def shard(input_dir: Path, work: Path, partition_size: int, *, input_format: str = "fhir") -> int:
    """Split the bulk export into partitions of ``partition_size`` patients (once per fingerprint).

    An OMOP CDM export (``input_format="omop"``) is converted into the same FHIR shards by
    :func:`actnav.screen.omop.shard_omop`.

    Returns:
        The number of partitions.

    Raises:
        InputError: ``Patient.ndjson`` is missing, or a line is not JSON (naming file and
            line, from 1); for OMOP, see
            :func:`~actnav.screen.omop.shard_omop`.
    """
    marker = work / "shards.done"
    if marker.exists():
        return int(marker.read_text())
    if input_format == "omop":
        from actnav.screen.omop import shard_omop

        omop_count = shard_omop(input_dir, work / "shards.tmp", partition_size).partitions
        if (work / "shards").exists():  # a previous run died after renaming: its shards are complete
            _remove_tree(work / "shards.tmp")
        else:
            os.replace(work / "shards.tmp", work / "shards")
        marker.write_text(str(omop_count))
        return omop_count
    patients_file = input_dir / "Patient.ndjson"
    if not patients_file.exists():
        raise InputError("the bulk export has no Patient.ndjson", where=str(input_dir))
    partition_of: dict[str, int] = {}
    number = 0
    with patients_file.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            pid = patient_id_of(_parse(line, "Patient.ndjson", line_number))
            if pid is not None:
                partition_of.setdefault(pid, number // partition_size)
            number += 1
    count = max(partition_of.values(), default=-1) + 1
    staging = work / "shards.tmp"
    staging.mkdir(parents=True, exist_ok=True)
    for rtype in BULK_TYPES:
        path = input_dir / f"{rtype}.ndjson"
        if not path.exists():
            continue
        outs: dict[int, Any] = {}
        try:
            with path.open(encoding="utf-8") as handle:
                for line_number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    pid = patient_id_of(_parse(line, path.name, line_number))
                    part = partition_of.get(pid) if pid is not None else None
                    if part is None:
                        continue  # about no patient of the export: nothing to screen
                    if part not in outs:
                        folder = staging / f"part-{part:05d}"
                        folder.mkdir(exist_ok=True)
                        outs[part] = (folder / f"{rtype}.ndjson").open("w", encoding="utf-8")
                    outs[part].write(line if line.endswith("\n") else line + "\n")
        finally:
            for out in outs.values():
                out.close()
    final = work / "shards"
    if final.exists():  # a previous run died after renaming: its shards are complete
        _remove_tree(staging)
    else:
        os.replace(staging, final)
    marker.write_text(str(count))
    return count


def _remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    path.rmdir()


def _parse(line: str, where: str, line_number: int) -> dict[str, Any]:
    """One NDJSON line (``line_number`` from 1) as a JSON object; InputError naming file and line."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:  # exc.msg names the problem, never the text
        raise InputError(f"line {line_number} is not JSON ({exc.msg})", where=where) from exc
    except RecursionError:
        raise InputError(f"line {line_number} nests too deeply to read", where=where) from None
    if not isinstance(data, dict):
        raise InputError(f"line {line_number} is not a JSON object", where=where)
    return data


def screen_partition(shard_dir: Path, part_path: Path, as_of: dt.date) -> int:
    """Screen one partition: read its resources, build records, evaluate, write the part.

    Targets: every product indication in force and every bundled trial
    (:func:`actnav.screen.vector.bundled_trials`; ``--trials`` is applied when the parts are
    joined, so changing it reuses finished partitions). A patient whose record cannot be read gets
    one row with kind ``record``, target ``(record)``, verdict ``input_error`` and the message
    (never an identifier) in ``unknowns``.

    Returns:
        The number of rows written. The ``.done`` marker beside ``part_path`` is written last.
    """
    # A partition allocates millions of short-lived, acyclic objects (resources, records, fact
    # values): the cyclic garbage collector's repeated passes over them cost about a fifth of the
    # time, and reference counting frees them anyway.
    enabled = gc.isenabled()
    gc.disable()
    try:
        table = _screen_shard(shard_dir, as_of)
    finally:
        if enabled:
            gc.enable()
    _write_atomic_bytes(part_path, lambda tmp: pq.write_table(table, tmp))
    done = part_path.with_suffix(".done")
    _write_atomic_bytes(done, lambda tmp: tmp.write_text(json.dumps({"rows": table.num_rows})))
    rows: int = table.num_rows
    return rows


def _screen_shard(shard_dir: Path, as_of: dt.date) -> pa.Table:
    """The rows of one partition (see :func:`screen_partition`)."""
    resources: dict[str, list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for rtype in BULK_TYPES:
        path = shard_dir / f"{rtype}.ndjson"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                resource = json.loads(line)
                pid = patient_id_of(resource)
                assert pid is not None  # sharding kept only resources of a patient
                if rtype == "Patient":
                    order.append(pid)
                resources[pid].append(resource)
    kb = load_knowledge()
    plan = ScreenPlan(kb, as_of, bundled_trials())
    records = []
    errors: list[tuple[str, str]] = []
    for pid in dict.fromkeys(order):
        try:
            records.append(record_from_resources(resources[pid], as_of=as_of))
        except FhirImportError as exc:  # InputError subclasses: bad data of one patient
            errors.append((pid, record_problem(exc, resources[pid])))
    table = plan.evaluate(plan.fact_table(records), [r.id for r in records])
    if errors:
        failed = pa.table(
            {
                "patient": [pid for pid, _ in errors],
                "kind": ["record"] * len(errors),
                "target": ["(record)"] * len(errors),
                "product": [""] * len(errors),
                "indication": [""] * len(errors),
                "disease": [""] * len(errors),
                "status": [""] * len(errors),
                "verdict": ["input_error"] * len(errors),
                "score": pa.array([None] * len(errors), type=pa.float64()),
                "unknowns": pa.array([[msg] for _, msg in errors], type=pa.list_(pa.string())),
            },
            schema=table.schema,
        )
        table = pa.concat_tables([table, failed])
    return table


_REF = re.compile(r"\b([A-Z][A-Za-z]+)/[A-Za-z0-9\-:_]+")  # ids with dots: by the record's refs
_INDEX = re.compile(r"\[\d+\]")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"[-+]?\d[\w.:/*+\-]*")
_PAREN = re.compile(r"\s*\([^()]*\)")


def record_problem(exc: InputError, resources: list[dict[str, Any]]) -> str:
    """The message of an ``input_error`` row: where (resource type and element) and the kind of
    problem, with no value, date, number or identifier from the export.

    The importer's messages name the resource (``Patient/2.birthDate``) and often the value
    (``2031-01-10 is after the evaluation date 2026-11-29``); a screen's output and logs go to
    more people than one patient's report, so both are removed:
    ``Patient.birthDate: after the screening date``.

    Args:
        exc: the importer's error for one patient.
        resources: that patient's resources (their ``Type/id`` references are replaced by the type).
    """
    refs = sorted(
        {f"{r.get('resourceType')}/{r.get('id')}" for r in resources if isinstance(r.get("id"), str)},
        key=len,
        reverse=True,
    )

    def without_ids(text: str) -> str:
        for ref in refs:
            text = text.replace(ref, ref.split("/", 1)[0])
        return _REF.sub(r"\1", text)  # a reference to a resource not in the record

    where = _INDEX.sub("", without_ids(exc.where or ""))
    message = exc.message.split(", got ", 1)[0]  # "expected ..., got <value>"
    if "after the evaluation date" in message:
        reason = "after the screening date"
    elif message.startswith("cannot convert "):
        reason = "the unit cannot be converted"
    elif re.match(r"the bundle has \d+ Patient resources", message):
        reason = "more than one Patient resource"
    else:
        reason = _PAREN.sub("", without_ids(message))
        if " is " in reason:  # "<value> is not a calendar date", "<value> unit is outside ..."
            head, tail = reason.split(" is ", 1)
            if _NUMBER.search(head) or _QUOTED.search(head):
                reason = tail
        reason = re.sub(r" like \S+$", "", reason)  # the format's example
        reason = _NUMBER.sub("", _QUOTED.sub("", reason))
        reason = " ".join(reason.split()).strip(" :;,.") or type(exc).__name__
    return f"{where}: {reason}" if where else reason


def run_screen(
    input_dir: Path,
    out_dir: Path,
    *,
    as_of: dt.date,
    scheduler: str | None = None,
    workers: int = 2,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    progress: bool = True,
    input_format: str | None = None,
    trials: str = "all",
) -> ScreenResult:
    """Screen a FHIR Bulk Data export against every product indication in force on ``as_of``.

    Args:
        input_dir: folder of ``<Type>.ndjson`` files (Patient required), or of OMOP CDM tables
            (``person`` required; :mod:`actnav.screen.omop`).
        input_format: ``"fhir"``, ``"omop"``, or None / ``"auto"`` to tell from the files.
        out_dir: output folder (created); see the module docstring for the layout.
        as_of: the screening date.
        scheduler: None for a local Dask cluster of ``workers`` processes; ``"synchronous"`` to
            run in this process (tests, debugging); otherwise a scheduler address
            (``tcp://host:8786``) whose workers can read ``out_dir``.
        workers: workers of the local cluster.
        partition_size: patients per partition.
        progress: show a progress bar (tqdm, on stderr).
        trials: which bundled trials the output keeps besides the product indications: ``all``,
            ``recruiting`` (overall status recruiting, not yet recruiting or enrolling by
            invitation) or ``none`` (:func:`actnav.screen.vector.select_trials`).

    Returns:
        The :class:`ScreenResult`.

    Raises:
        InputError: missing or unreadable input (see :func:`shard`), bad partition size, bad
            ``trials`` choice, a scheduler that cannot be reached (:func:`check_scheduler`).
    """
    select_trials(SCHEMA.empty_table(), trials)  # an unknown choice fails before any work
    if partition_size < 1:
        raise InputError("the partition size must be at least 1", where="--partition-size")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("the output exists and is not a folder", where="--out")
    if scheduler not in (None, "synchronous"):
        check_scheduler(scheduler)  # before the (long) split of the export
    if not input_dir.is_dir():
        raise InputError("the input is not a folder of NDJSON files or OMOP tables", where=str(input_dir))
    from actnav.screen.omop import detect_format

    fmt = detect_format(input_dir, input_format)
    work = (
        out_dir
        / ".work"
        / fingerprint(input_dir, as_of=as_of, partition_size=partition_size, input_format=fmt)
    )
    work.mkdir(parents=True, exist_ok=True)
    count = shard(input_dir, work, partition_size, input_format=fmt)
    parts = work / "parts"
    parts.mkdir(exist_ok=True)
    jobs = [
        (work / "shards" / f"part-{i:05d}", parts / f"part-{i:05d}.parquet")
        for i in range(count)
        if not (parts / f"part-{i:05d}.done").exists()
    ]
    _execute(jobs, as_of, scheduler, workers, progress)
    if count:
        table = pa.concat_tables([pq.read_table(parts / f"part-{i:05d}.parquet") for i in range(count)])
    else:
        table = SCHEMA.empty_table()
    table = select_trials(table, trials)
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = out_dir / "screen.parquet"
    _write_atomic_bytes(parquet, lambda tmp: pq.write_table(table, tmp))
    text, page = summarise(table, as_of)
    summary_text, summary_html = out_dir / "summary.txt", out_dir / "summary.html"
    _write_atomic_bytes(summary_text, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    _write_atomic_bytes(summary_html, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    import pyarrow.compute as pc

    errors: dict[str, int] = defaultdict(int)
    for row in table.filter(pc.equal(table.column("verdict"), "input_error")).to_pylist():
        errors[row["unknowns"][0]] += 1
    patients = pc.count_distinct(table.column("patient")).as_py()
    return ScreenResult(
        partitions=count,
        screened=len(jobs),
        skipped=count - len(jobs),
        patients=patients,
        rows=table.num_rows,
        input_errors=dict(errors),
        parquet=parquet,
        summary_text=summary_text,
        summary_html=summary_html,
    )


def _execute(
    jobs: list[tuple[Path, Path]], as_of: dt.date, scheduler: str | None, workers: int, progress: bool
) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="partitions", unit="part", disable=not progress or not jobs)
    try:
        if scheduler == "synchronous":
            for shard_dir, part in jobs:
                screen_partition(shard_dir, part, as_of)
                bar.update()
            return
        if not jobs:
            return
        from distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            # Dashboard on a free loopback port: the default 8787 may be taken by another
            # cluster, and the scheduler's HTTP server starts even with the dashboard off.
            # Workers log errors only (a failed task is re-raised here anyway, a cancelled one
            # after Ctrl-C is no news) and ignore SIGINT: Ctrl-C reaches the whole process group,
            # and this process closes the workers itself (a worker hit by it prints tracebacks).
            # The workers are spawned with SIGINT ignored (inherited; a Ctrl-C during the few
            # seconds of the start is lost) and keep ignoring it (the preload; restarted workers).
            with _sigint_ignored():
                cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                    preload=[_WORKER_IGNORES_SIGINT],
                )
            client = Client(cluster)  # type: ignore[no-untyped-call]
        else:
            client = _connect(scheduler)
        interrupted = False
        try:
            futures = [
                client.submit(
                    screen_partition,
                    shard_dir,
                    part,
                    as_of,
                    key=f"screen-{part.stem}-{part.parent.parent.name}",
                    pure=False,
                )
                for shard_dir, part in jobs
            ]
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                future.result()  # re-raises a worker's exception here
                bar.update()
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            # Closing mid-task makes distributed log cancelled tasks and workers stopped with
            # tracebacks: after an interruption the user asked for that, so say nothing.
            with _distributed_quiet(interrupted):
                client.close()  # type: ignore[no-untyped-call]
                if cluster is not None:
                    cluster.close()
    finally:
        bar.close()


#: Worker preload (Python source, run as the worker process starts, in its main thread).
_WORKER_IGNORES_SIGINT = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
#: Seconds to wait for a Dask scheduler given with ``--scheduler`` before giving up.
SCHEDULER_TIMEOUT = 10.0
_DISTRIBUTED_LOGGERS = ("distributed", "distributed.nanny", "distributed.worker", "distributed.core",
                        "distributed.scheduler", "distributed.client", "distributed.deploy")  # fmt: skip


def check_scheduler(address: str, timeout: float = SCHEDULER_TIMEOUT) -> None:
    """Check that a Dask scheduler address is well formed and something listens there.

    Args:
        address: ``tcp://HOST:PORT`` (or another scheme distributed knows with a host and port).
        timeout: seconds to wait for the TCP connection.

    Raises:
        InputError: (where ``--scheduler``) a malformed address, or nothing answers within ``timeout``.
    """
    import socket

    from distributed.comm.addressing import get_address_host_port

    try:
        host, port = get_address_host_port(address)
    except ValueError as exc:
        raise InputError(
            f"not a Dask scheduler address ({exc})",
            where="--scheduler",
            hint="tcp://HOST:PORT or synchronous",
        ) from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise InputError(
            f"cannot reach the Dask scheduler at {address} ({reason})",
            where="--scheduler",
            hint="is the scheduler running and its port open from here?",
        ) from None
    # Something listens: ask it who it is, with a deadline (a web server never answers the Dask
    # handshake, and garbage bytes can read as an absurd message length).
    try:
        identity = asyncio.run(asyncio.wait_for(_identity(address, timeout), timeout))
    except Exception:  # any failure of the probe means the same thing to the user
        identity = None
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        raise InputError(
            f"{address} answers, but not as a Dask scheduler",
            where="--scheduler",
            hint="give the address the scheduler prints (tcp://HOST:8786 by default)",
        )


async def _identity(address: str, timeout: float) -> Any:
    """The ``identity`` reply of a Dask server (a dict with ``type`` ``Scheduler``)."""
    from distributed.comm.core import connect

    comm = await connect(address, timeout=timeout)  # type: ignore[no-untyped-call]
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        await comm.close()


def _connect(address: str) -> Any:
    """A Client of the scheduler at ``address`` (checked by :func:`check_scheduler` first)."""
    from distributed import Client

    try:
        return Client(address, timeout=SCHEDULER_TIMEOUT)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:  # it answered TCP but is no Dask scheduler, or went away
        raise InputError(
            f"cannot reach the Dask scheduler at {address} ({type(exc).__name__})", where="--scheduler"
        ) from None


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored for the duration (main thread only: others may not change handlers).
    Processes spawned meanwhile inherit the ignored disposition (a blocked mask is not
    inherited by distributed's spawned workers); a Ctrl-C pressed meanwhile is lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _distributed_quiet(quiet: bool) -> Iterator[None]:
    """Silence distributed's loggers in this process for the duration when ``quiet``."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(name) for name in _DISTRIBUTED_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def summarise(table: pa.Table, as_of: dt.date, short_list: int = SHORT_LIST) -> tuple[str, str]:
    """The coordinator summary as text and HTML: per product indication, then per trial (with
    its overall status), the patients eligible and needing information, and the short list
    (eligible first, then by score, then in input order; at most ``short_list``).

    Columnar (numpy over the table's columns): a 100,000-patient screen has millions of rows and
    only the short-listed ones become Python objects. Patient ids are the export's
    (pseudonymous) ids; the summary is for the care team.
    """
    import numpy as np
    import pyarrow.compute as pc

    patients = pc.count_distinct(table.column("patient")).as_py()
    names = pc.unique(table.column("target"))  # first-appearance order: indications, then trials
    code = pc.index_in(table.column("target"), value_set=names).to_numpy(zero_copy_only=False)
    _, first = np.unique(code, return_index=True)
    kinds = table.column("kind").take(pa.array(first)).to_pylist()
    statuses = table.column("status").take(pa.array(first)).to_pylist()
    verdict = table.column("verdict")
    eligible = pc.equal(verdict, "eligible").to_numpy(zero_copy_only=False)
    needs = pc.equal(verdict, "needs_information").to_numpy(zero_copy_only=False)
    errors = int(pc.sum(pc.equal(verdict, "input_error")).as_py() or 0)
    hit = np.flatnonzero(eligible | needs)
    # Order within a target: eligible before needs information, then higher score first, then
    # input order (row number); one sort for all targets, then the first rows of each.
    score = table.column("score").to_numpy(zero_copy_only=False)
    key = np.where(eligible[hit], 0.0, 1000.0) - np.nan_to_num(score[hit])
    hit = hit[np.lexsort((hit, key, code[hit]))]
    bounds = np.searchsorted(code[hit], np.arange(len(names) + 1))
    wanted = [(t, int(bounds[t]), int(bounds[t + 1])) for t in range(len(names)) if kinds[t] in _KINDS]
    chosen = np.concatenate(
        [hit[lo : min(hi, lo + short_list)] for _, lo, hi in wanted] or [np.zeros(0, np.int64)]
    )
    listed = table.take(pa.array(chosen, type=pa.int64())).to_pylist() if len(chosen) else []
    sections: list[tuple[str, str, str, int, int, list[dict[str, Any]]]] = []
    start = 0
    for t, lo, hi in wanted:
        n_eligible = int(eligible[hit[lo:hi]].sum())
        ranked = listed[start : start + min(short_list, hi - lo)]
        start += len(ranked)
        sections.append(
            (kinds[t], names[t].as_py(), statuses[t] or "", n_eligible, hi - lo - n_eligible, ranked)
        )
    n_ind = sum(1 for s in sections if s[0] == "indication")
    n_trials = len(sections) - n_ind
    head = f"{patients} patients, {n_ind} product indications, {n_trials} trials"
    lines = [f"actnav screen on {as_of.isoformat()}: {head}", ""]
    for kind, title in (("indication", "Product indications"), ("trial", "Trials (overall status)")):
        chosen = [s for s in sections if s[0] == kind]
        if not chosen:
            continue
        lines += [f"{title}:", ""]
        for _, target, status, n_eligible, n_needs, ranked in chosen:
            label = f"{target} ({status or 'status not given'})" if kind == "trial" else target
            lines.append(f"{label}: {n_eligible} eligible, {n_needs} need information")
            for r in ranked:
                extra = f" (needs: {', '.join(r['unknowns'])})" if r["unknowns"] else ""
                lines.append(f"  {r['verdict']:<17} {r['score']:5.1f}  {r['patient']}{extra}")
        lines.append("")
    if errors:
        lines.append(f"{errors} patient record(s) could not be read (see verdict input_error).")
    text = "\n".join(lines).rstrip("\n") + "\n"
    esc = html.escape
    body = [
        f"<h1>actnav screen on {as_of.isoformat()}</h1>",
        f"<p>{esc(head)}.</p>",
        "<table><tr><th>Kind</th><th>Target</th><th>Status</th><th>Eligible</th><th>Needs information</th></tr>",
        *(
            f"<tr><td>{k}</td><td>{esc(t)}</td><td>{esc(s)}</td><td>{e}</td><td>{n}</td></tr>"
            for k, t, s, e, n, _ in sections
        ),
        "</table>",
    ]
    for kind, target, status, _, _, ranked in sections:
        if not ranked:
            continue
        label = f"{target} ({status or 'status not given'})" if kind == "trial" else target
        body.append(
            f"<h2>{esc(label)}</h2><table><tr><th>Patient</th><th>Verdict</th><th>Score</th><th>Needs</th></tr>"
        )
        body += [
            f"<tr><td>{esc(r['patient'])}</td><td>{r['verdict']}</td><td>{r['score']:.1f}</td>"
            f"<td>{esc(', '.join(r['unknowns']))}</td></tr>"
            for r in ranked
        ]
        body.append("</table>")
    if errors:
        body.append(f"<p>{errors} patient record(s) could not be read (see verdict input_error).</p>")
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>actnav screen</title>"
        + "".join(body)
        + "</html>\n"
    )
    return text, page


def read_result(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The rows of a ``screen.parquet`` as dicts (for tests and tools); only rows of ``kind``
    (``indication``, ``trial`` or ``record``) when given."""
    table = pq.read_table(path)
    if kind is not None:
        import pyarrow.compute as pc

        table = table.filter(pc.equal(table.column("kind"), kind))
    return list(table.to_pylist())
