"""The `care-graph` command: serve the API and look after its database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from care_graph import __version__
from care_graph.api.ids import encode_global_id, key_of_type
from care_graph.auth import Role, TokenSettings, mint_token
from care_graph.config import Settings
from care_graph.db import capacity_store
from care_graph.db.documents_store import add_document, list_documents
from care_graph.db.embedded import EmbeddedPostgres
from care_graph.db.migrate import migrate, reset_schema
from care_graph.db.pool import connect, create_pool
from care_graph.db.server import database_url
from care_graph.db.standby import EmbeddedStandby
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.nhs import is_valid_nhs_number, normalise_nhs_number
from care_graph.progress import Progress
from care_graph.seed.generate import generate
from care_graph.seed.load import database_is_empty, ensure_loadable, load
from care_graph.seed.scales import SCALES, Scale
from care_graph.simulation.recommend import MAX_BUDGET, MAX_CANDIDATES
from care_graph.simulation.world import MAX_REPLICATIONS, Assumptions, Policy

T = TypeVar("T")


def _run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


async def _with_connection(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    connection = await connect(url)
    try:
        return await work(connection)
    finally:
        await connection.close()


async def _migrate(url: str, progress: Progress) -> None:
    async def apply(connection: Any) -> None:
        applied = await migrate(connection)
        if applied:
            for migration in applied:
                progress.note(f"applied {migration.version:04d}_{migration.name}")
        else:
            progress.note("schema is up to date")

    await _with_connection(url, apply)


async def _seed(
    url: str,
    scale_name: str,
    scale: Scale,
    seed: int,
    anchor: date,
    replace: bool,
    only_if_empty: bool = False,
) -> None:
    """Migrate, generate and load, showing progress and ending with a summary."""
    await _migrate(url, Progress("migrate"))

    async def fill(connection: Any) -> None:
        if only_if_empty and not await database_is_empty(connection):
            click.echo("[seed] the database already holds data; not seeding", err=True)
            return
        await ensure_loadable(connection, replace=replace)  # before minutes of generating
        generating = Progress("generate")
        generating.note(
            f"scale {scale_name} ({scale.referrals:,} referrals, {scale.staff:,}"
            f" staff, {scale.weeks} weeks), seed {seed}, anchored at {anchor}"
        )
        data = generate(scale, seed=seed, anchor=anchor, progress=generating.step)
        loading = Progress("load")
        await load(connection, data, replace=replace, progress=loading.step)
        counts = data.counts()
        click.echo(generating.summary("generated"), err=True)
        click.echo(loading.summary("loaded with COPY"), err=True)
        click.echo(
            f"seeded {counts['referrals']:,} referrals, {counts['slots']:,} slots,"
            f" {counts['patients']:,} patients, {counts['staff']:,} staff,"
            f" {counts['sites']:,} sites in {generating.elapsed:.1f} s",
            err=True,
        )

    await _with_connection(url, fill)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="care-graph")
def cli() -> None:
    """care_graph: a booking-and-referral backbone for health systems.

    With no DATABASE_URL, every command uses care_graph's own embedded PostgreSQL, kept in
    CARE_GRAPH_DATA_DIR (default: the user's data directory).
    """


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="uvicorn worker processes.",
)
@click.option(
    "--seed/--no-seed",
    "seed_demo",
    default=True,
    show_default=True,
    help="Load demo data when the database is empty.",
)
@click.option(
    "--demo-scale",
    type=click.Choice(sorted(SCALES)),
    default="demo",
    show_default=True,
    help="Size of the demo data loaded into an empty database.",
)
def serve(host: str, port: int, workers: int, seed_demo: bool, demo_scale: str) -> None:
    """Serve the API; migrate first, and load demo data into an empty database."""
    import uvicorn

    from care_graph.api.transport import uvicorn_options
    from care_graph.logs import uvicorn_log_config
    from care_graph.observability import metrics

    settings = Settings.from_environment()
    with database_url(settings) as url:
        if seed_demo:
            _run(
                _seed(
                    url,
                    demo_scale,
                    SCALES[demo_scale],
                    0,
                    date.today(),
                    replace=False,
                    only_if_empty=True,
                )
            )
        else:
            _run(_migrate(url, Progress("migrate")))
        os.environ["DATABASE_URL"] = url  # worker processes read it
        click.echo(f"care_graph on http://{host}:{port} (health: /healthz)", err=True)
        # uvicorn shuts down gracefully, then re-raises the signal that stopped it; turn that
        # into a normal return so the embedded database is stopped cleanly on the way out.
        signal.signal(signal.SIGTERM, _stop_serving)
        signal.signal(signal.SIGINT, _stop_serving)
        with contextlib.suppress(_StopServing), metrics.shared_by_workers(workers):
            uvicorn.run(
                "care_graph.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="info",
                log_config=uvicorn_log_config(settings.log_format),
                timeout_graceful_shutdown=settings.shutdown_grace_s,  # then in-flight work is cut
                **uvicorn_options(settings.limits),  # request heads bounded (api/transport.py)
            )
    click.echo("care_graph stopped", err=True)


class _StopServing(Exception):
    """Raised by the signal handler once uvicorn has finished its graceful shutdown."""


def _stop_serving(signum: int, frame: object) -> None:
    raise _StopServing


@cli.command()
def schema() -> None:
    """Print the GraphQL schema (SDL) the server serves."""
    from care_graph.api.schema import schema_sdl

    click.echo(schema_sdl(), nl=False)


@cli.command()
@click.option(
    "--role",
    type=click.Choice([str(role) for role in Role]),
    required=True,
    help="What the token's holder may do.",
)
@click.option("--subject", required=True, help="Who holds it (a referrer's subject, a user id).")
@click.option(
    "--patient",
    help="For --role patient: their NHS number, or their global id as the API shows it"
    " (an NHS number is looked up in the database).",
)
@click.option(
    "--site",
    "sites",
    multiple=True,
    help="For clinicians and schedulers: a site they work at, by its global id (repeatable).",
)
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(60, 86_400 * 30),
    help="Seconds until it expires.",
)
@click.option(
    "--dashboard",
    metavar="URL",
    help="Print a sign-in link to the dashboard of the server at URL instead of the token.",
)
def token(
    role: str,
    subject: str,
    patient: str | None,
    sites: tuple[str, ...],
    ttl: int,
    dashboard: str | None,
) -> None:
    """Mint a development bearer token (needs the development shared secret); the token (or
    with --dashboard a sign-in link) goes to stdout, what it grants to stderr."""
    settings = Settings.from_environment()
    if Role(role) is Role.PATIENT and patient is None:
        raise click.UsageError("a patient token needs --patient")
    patient_id = None if patient is None else _patient_key(settings, patient)
    site_ids = tuple(_key_of("Site", "--site", site) for site in sites) or None
    tokens = TokenSettings.from_environment(development=settings.development)
    minted = mint_token(
        tokens,
        role=Role(role),
        subject=subject,
        patient_id=patient_id,
        site_ids=site_ids,
        ttl_seconds=ttl,
    )
    click.echo(minted if dashboard is None else f"{dashboard.rstrip('/')}/dashboard?token={minted}")
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl)
    grants = f"role {role}, subject {subject}"
    if patient_id is not None:
        grants += f", patient {encode_global_id('Patient', patient_id)}"
    if site_ids:
        grants += ", sites " + " ".join(encode_global_id("Site", site) for site in site_ids)
    click.echo(f"token: {grants}; expires {expires.isoformat()}", err=True)


def _key_of(type_name: str, option: str, global_id: str) -> int:
    """The record key of a global id of ``type_name``, or a usage error naming the option."""
    key = key_of_type(global_id.strip(), type_name)
    if key is None:
        raise click.BadParameter(f"{global_id!r} is not a {type_name} id", param_hint=option)
    return key


def _patient_key(settings: Settings, patient: str) -> int:
    """The patient record an NHS number (looked up) or a Patient global id names."""
    number = normalise_nhs_number(patient)
    if not is_valid_nhs_number(number):
        return _key_of("Patient", "--patient", patient)

    async def look_up(connection: Any) -> int | None:
        key: int | None = await connection.fetchval(
            "SELECT id FROM patients WHERE nhs_number = $1", number
        )
        return key

    with database_url(settings) as url:
        key = _run(_with_connection(url, look_up))
    if key is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, f"no patient has NHS number {number}")
    return key


@cli.command()
@click.option("--service", "services", multiple=True, help="Service code (repeatable); all.")
@click.option("--region", "regions", multiple=True, help="Region code (repeatable); all.")
@click.option(
    "--horizon-days",
    default=56,
    show_default=True,
    type=int,
    help="Match slots from now to this many days ahead (up to a year).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the whole plan (assignments and reasons) here as JSON.",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Also score first-come-first-served and priority-greedy booking; all three choose"
    " from every feasible slot (slower: use a scope).",
)
@click.option(
    "--commit",
    is_flag=True,
    help="Book the plan (as a scheduler; pairs overtaken meanwhile are skipped).",
)
@click.option(
    "--plan",
    "plan_key",
    help="Commit the plan kept under this key (proposed earlier, here or through GraphQL)"
    " instead of proposing one; committing it again books nothing.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Connections booking the plan's batches at once (with --commit).",
)
def match(
    services: tuple[str, ...],
    regions: tuple[str, ...],
    horizon_days: int,
    output: str | None,
    compare: bool,
    commit: bool,
    plan_key: str | None,
    workers: int,
) -> None:
    """Propose the optimal matching of waiting referrals to free slots and keep it under a
    key; --commit books it, --plan KEY books one proposed earlier."""
    from care_graph.domain.booking import Actor
    from care_graph.domain.planning import Matched, run_matching
    from care_graph.matching.compare import compare as compare_plans
    from care_graph.matching.plan import Scope

    if plan_key is not None and (compare or services or regions):
        raise click.UsageError("--plan commits a kept plan: it takes no scope and no --compare")
    settings = Settings.from_environment()

    async def run(url: str) -> Matched:
        pool = await create_pool(url, min_size=1, max_size=workers, statement_timeout_ms=0)
        try:
            return await run_matching(
                pool,
                Actor("care-graph match", Role.SCHEDULER),
                scope=Scope(list(services) or None, list(regions) or None, horizon_days),
                plan_key=plan_key,
                commit=commit or plan_key is not None,
                model=settings.cost_model,
                workers=workers,
                every_slot=compare,
            )
        finally:
            await pool.close()

    with database_url(settings) as url:
        matched = _run(run(url))
    plan, key, committed, instance = matched.plan, matched.key, matched.committed, matched.instance
    progress = Progress("match")
    for phase, seconds in plan.timings.items():
        progress.note(f"{phase:<12} {seconds:8.3f} s")
    summary = plan.summary
    click.echo(f"matched {summary.matched:,} of {summary.referrals:,} waiting referrals")
    for count in summary.by_priority:
        click.echo(
            f"  {count.priority:<14} {count.matched:>7,} matched {count.unmatched:>7,} unmatched"
        )
    click.echo(
        f"  seen before breach {summary.seen_before_breach:,}"
        f" ({summary.breaches_avoided:,} breaches avoided);"
        f" breaches still expected {summary.breaches_expected:,};"
        f" already breached {summary.already_breached:,}"
    )
    click.echo(
        f"  travel km mean {summary.travel_km.mean} p95 {summary.travel_km.p95};"
        f" days to appointment mean {summary.days_to_appointment.mean}"
        f" p95 {summary.days_to_appointment.p95}"
    )
    click.echo(f"plan {key} (commit it with: care-graph match --plan {key})")
    if compare and instance is not None:
        click.echo(
            "| booking | urgent seen in time | seen in time | matched | mean km | utilisation |"
        )
        click.echo("|---|---|---|---|---|---|")
        for name, figures in compare_plans(instance, instance.chosen).items():
            click.echo(
                f"| {name} | {figures['urgent_seen_in_time']} | {figures['seen_in_time']}"
                f" | {figures['matched']} | {figures['mean_travel_km']} |"
                f" {figures['utilisation']} |"
            )
    if committed is not None:
        click.echo(
            f"committed: {len(committed.booked):,} booked, {len(committed.skipped):,} skipped"
        )
    if output:
        Path(output).write_bytes(orjson.dumps(plan.to_json(), option=orjson.OPT_INDENT_2))
        click.echo(f"plan written to {output}")


@cli.command()
@click.option("--region", required=True, help="Region code, e.g. NORTH_WEST.")
@click.option("--service", help="One service's code (e.g. CARDIOLOGY); every service if left out.")
@click.option(
    "--weeks",
    default=capacity_store.DEFAULT_WEEKS,
    show_default=True,
    type=click.IntRange(1, capacity_store.MAX_WEEKS),
    help="Weeks from the current one (Monday to Sunday, Europe/London).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print every row (service and week) as JSON, named as GraphQL's capacityOutlook"
    " names them, instead of the tables.",
)
def outlook(region: str, service: str | None, weeks: int, as_json: bool) -> None:
    """The operating picture of a region: the waiting list now by service (by priority and
    weeks waited, breached already, breaching within the outlook), then week by week what
    arrives, what is on offer, booked and unused, utilisation and breaches ahead. The same
    figures as GraphQL's capacityOutlook; docs/capacity.md defines each."""
    from care_graph.outlook_report import outlook_json, outlook_tables

    async def read(connection: Any) -> list[dict[str, Any]]:
        if not await capacity_store.region_exists(connection, region):
            raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown region {region!r}")
        return await capacity_store.read_outlook(connection, region, service, weeks)

    with database_url(Settings.from_environment()) as url:
        rows = _run(_with_connection(url, read))
    if as_json:
        click.echo(outlook_json(rows))
        return
    for line in outlook_tables(region, rows):
        click.echo(line)


@cli.group()
def db() -> None:
    """Look after the database: migrate, seed, reset, find it."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (idempotent; refuses if an applied file changed)."""
    with database_url(Settings.from_environment()) as url:
        _run(_migrate(url, Progress("migrate")))


@db.command("seed")
@click.option(
    "--scale",
    "scale_name",
    type=click.Choice(sorted(SCALES)),
    default="demo",
    show_default=True,
    help="Named size of the data set.",
)
@click.option("--sites", type=click.IntRange(min=35), help="Override the number of sites.")
@click.option("--staff", type=click.IntRange(min=1), help="Override the number of staff.")
@click.option("--patients", type=click.IntRange(min=1), help="Override the number of patients.")
@click.option("--referrals", type=click.IntRange(min=1), help="Override the number of referrals.")
@click.option("--weeks", type=click.IntRange(1, 52), help="Override the weeks of rosters.")
@click.option(
    "--seed", "seed", default=0, show_default=True, help="Random seed: same seed, same rows."
)
@click.option(
    "--anchor",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The data's 'today' (default: today).",
)
@click.option("--replace", is_flag=True, help="Empty the data tables first.")
def db_seed(
    scale_name: str,
    sites: int | None,
    staff: int | None,
    patients: int | None,
    referrals: int | None,
    weeks: int | None,
    seed: int,
    anchor: Any,
    replace: bool,
) -> None:
    """Generate demo data and load it with COPY."""
    scale = SCALES[scale_name].with_overrides(
        sites=sites, staff=staff, patients=patients, referrals=referrals, weeks=weeks
    )
    anchor_date = anchor.date() if anchor else date.today()
    with database_url(Settings.from_environment()) as url:
        _run(_seed(url, scale_name, scale, seed, anchor_date, replace))


@db.command("url")
def db_url() -> None:
    """Print the database URL (starting the embedded server and leaving it running)."""
    with database_url(Settings.from_environment(), keep_running=True) as url:
        click.echo(url)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server if it is running (nothing to do with DATABASE_URL)."""
    settings = Settings.from_environment()
    if settings.database_url:
        click.echo("DATABASE_URL is set: care_graph does not manage that server", err=True)
        return
    stopped = EmbeddedPostgres(settings.data_dir).stop_running()
    click.echo("stopped" if stopped else "not running", err=True)


@db.command("replica")
@click.option("--stop", "stop", is_flag=True, help="Stop the standby instead (its copy is kept).")
def db_replica(stop: bool) -> None:
    """Start a hot standby of the embedded server (copied from it the first time, in
    CARE_GRAPH_DATA_DIR/standby) and print its URL, for CARE_GRAPH_REPLICA_URLS; it keeps
    running, following the primary, until `db replica --stop`."""
    settings = Settings.from_environment()
    if settings.database_url:
        raise click.UsageError("DATABASE_URL is set: make standbys of that server with its tools")
    primary = EmbeddedPostgres(settings.data_dir, keep_running=True)
    standby = EmbeddedStandby(primary, settings.data_dir / "standby")
    if stop:
        standby.stop()
        click.echo("stopped", err=True)
        return
    primary.start()
    click.echo(standby.start())


@db.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def db_reset(yes: bool) -> None:
    """Drop everything and migrate an empty schema; `db seed` fills it again."""
    if not yes:
        click.confirm("Delete the whole care_graph schema and all its data?", abort=True)
    with database_url(Settings.from_environment()) as url:
        _run(_with_connection(url, reset_schema))
        _run(_migrate(url, Progress("reset")))


@cli.group()
def documents() -> None:
    """The trusted documents production serves (CARE_GRAPH_DOCUMENTS=trusted)."""


@documents.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def documents_add(files: tuple[str, ...]) -> None:
    """Trust the GraphQL documents in FILES, each checked against the schema first; prints
    the sha256 a client may send in extensions.persistedQuery instead of the text."""
    from care_graph.api.documents import sha256_of
    from care_graph.api.schema import build_schema
    from care_graph.api.service import GraphQLService

    service = GraphQLService(build_schema())
    texts = {}
    for name in files:
        text = Path(name).read_bytes().decode("utf-8")  # as sent: no newline translation
        prepared = service.prepare(text)
        if prepared.errors:
            raise CareGraphError(
                ErrorCode.INVALID_ARGUMENT,
                f"{name} is not a document this schema runs: {prepared.errors[0].message}",
            )
        texts[name] = text

    async def add(connection: Any) -> list[tuple[str, str, bool]]:
        async with connection.transaction():  # every file, or none
            return [
                (name, sha256_of(text), await add_document(connection, sha256_of(text), text, name))
                for name, text in texts.items()
            ]

    with database_url(Settings.from_environment()) as url:
        _run(_migrate(url, Progress("migrate")))
        added = _run(_with_connection(url, add))
    for name, digest, new in added:
        click.echo(f"{digest}  {name}{'' if new else '  (trusted already)'}")
    fresh = sum(new for _, _, new in added)
    click.echo(f"trusted {fresh} new of {len(added)} documents", err=True)


@documents.command("list")
def documents_list() -> None:
    """Every trusted document: its sha256, the file it came from, when it was added."""
    with database_url(Settings.from_environment()) as url:
        rows = _run(_with_connection(url, list_documents))
    for digest, source, added in rows:
        click.echo(f"{digest}  {added}  {source}")
    click.echo(f"{len(rows)} trusted documents", err=True)


ASSUMED = Assumptions()


@cli.command()
@click.option("--region", required=True, help="Region code, e.g. NORTH_WEST.")
@click.option("--service", "services", multiple=True, help="Service code (repeatable); all.")
@click.option("--weeks", default=18, show_default=True, type=click.IntRange(1, 53))
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=click.Choice([policy.value for policy in Policy]),
    help="Booking policy (repeatable); all three by default.",
)
@click.option(
    "--replications", default=3, show_default=True, type=click.IntRange(1, MAX_REPLICATIONS)
)
@click.option("--seed", default=1, show_default=True, type=int, help="First replication's seed.")
@click.option(
    "--scenario",
    "scenario_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A what-if scenario (JSON, see docs/capacity.md), run against the baseline.",
)
@click.option("--no-show-rate", default=ASSUMED.no_show_rate, show_default=True, type=float)
@click.option(
    "--cancellation-rate", default=ASSUMED.cancellation_rate, show_default=True, type=float
)
@click.option(
    "--release-days",
    default=ASSUMED.release_days,
    show_default=True,
    type=int,
    help="Slots open for booking this many days ahead.",
)
@click.option(
    "--commit-days",
    default=ASSUMED.commit_days,
    show_default=True,
    type=int,
    help="care_graph makes a planned booking this many days before its slot.",
)
@click.option("--json", "as_json", is_flag=True, help="Print every outcome as JSON instead.")
def simulate(
    region: str,
    services: tuple[str, ...],
    weeks: int,
    policies: tuple[str, ...],
    replications: int,
    seed: int,
    scenario_files: tuple[str, ...],
    no_show_rate: float,
    cancellation_rate: float,
    release_days: int,
    commit_days: int,
    as_json: bool,
) -> None:
    """Simulate a region's waiting list day by day under each booking policy (and each
    scenario against the baseline), from a snapshot of the database; nothing is written."""
    from care_graph.simulation.scenarios import Scenario
    from care_graph.simulation.snapshot import snapshot
    from care_graph.simulation.study import study
    from care_graph.simulation.summary import render

    try:
        assumptions = Assumptions(
            horizon_days=weeks * 7,
            release_days=release_days,
            commit_days=commit_days,
            no_show_rate=no_show_rate,
            cancellation_rate=cancellation_rate,
        )
        scenarios = [Scenario()] + [
            Scenario.from_json(orjson.loads(Path(name).read_bytes())) for name in scenario_files
        ]
    except (ValueError, orjson.JSONDecodeError) as error:
        raise click.UsageError(str(error)) from error
    settings = Settings.from_environment()
    progress = Progress("simulate")
    with database_url(settings) as url:
        world = _run(
            _with_connection(
                url, lambda connection: snapshot(connection, region, list(services) or None)
            )
        )
    progress.step("snapshot (waiting)", len(world.waiting["id"]))
    try:
        result = study(
            world,
            assumptions,
            policies=[Policy(name) for name in policies] or list(Policy),
            scenarios=scenarios,
            replications=replications,
            seed=seed,
            model=settings.cost_model,
            report=lambda label: lambda done, total: progress.bar(label, done, total),
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if as_json:
        click.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(world, assumptions, result))
    progress.note(f"done in {progress.elapsed:.1f} s")


@cli.command()
@click.option("--region", required=True, help="Region code, e.g. NORTH_WEST.")
@click.option(
    "--sessions",
    "budget",
    default=20,
    show_default=True,
    type=click.IntRange(1, MAX_BUDGET),
    help="Weekly clinics to add, at most.",
)
@click.option("--weeks", default=18, show_default=True, type=click.IntRange(2, 53))
@click.option(
    "--candidates",
    "max_candidates",
    default=400,
    show_default=True,
    type=click.IntRange(1, MAX_CANDIDATES),
    help="Candidates the matcher values exactly.",
)
@click.option(
    "--lead-days",
    default=14,
    show_default=True,
    type=click.IntRange(1, 365),
    help="Added clinics start this many days ahead at the soonest.",
)
@click.option(
    "--replications",
    default=3,
    show_default=True,
    type=click.IntRange(0, MAX_REPLICATIONS),
    help="Simulated replications confirming the choice (0: none).",
)
@click.option("--seed", default=1, show_default=True, type=int, help="First replication's seed.")
@click.option(
    "--compare-simple",
    is_flag=True,
    help="Also simulate as many sessions placed by the simple rule (longest lists first).",
)
@click.option(
    "--roster-file",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the draft roster here (JSON that `care-graph roster publish` applies).",
)
@click.option(
    "--scenario-file",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the sessions as a what-if scenario (JSON for `care-graph simulate`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
def recommend(
    region: str,
    budget: int,
    weeks: int,
    max_candidates: int,
    lead_days: int,
    replications: int,
    seed: int,
    compare_simple: bool,
    roster_file: str | None,
    scenario_file: str | None,
    as_json: bool,
) -> None:
    """Recommend the extra weekly clinics, from the staff who could run them within the
    rostering rules, that avoid the most breaches over the horizon; confirm them with the
    simulator. Nothing is written to the database."""
    from care_graph.simulation import recommend as recommending
    from care_graph.simulation.snapshot import snapshot
    from care_graph.simulation.summary import render, render_recommendation

    if lead_days >= weeks * 7:
        raise click.UsageError("--lead-days falls within the horizon")
    assumptions = Assumptions(horizon_days=weeks * 7)
    settings = Settings.from_environment()
    progress = Progress("recommend")
    with database_url(settings) as url:
        world = _run(_with_connection(url, lambda connection: snapshot(connection, region)))
    progress.step("snapshot (staff)", len(world.staff))
    found = recommending.candidates(world, assumptions, lead_days=lead_days)
    chosen = recommending.recommend(
        world,
        assumptions,
        budget,
        max_candidates=max_candidates,
        lead_days=lead_days,
        seed=seed,
        model=settings.cost_model,
        found=found,
        report=lambda done, total: progress.bar("valuing and choosing", done, total),
    )
    simple = (
        recommending.simple_rule(world, found, len(chosen.picks))
        if compare_simple and chosen.picks
        else None
    )
    verdict = (
        recommending.confirm(
            world,
            assumptions,
            chosen,
            compare=simple,
            replications=replications,
            seed=seed,
            model=settings.cost_model,
            report=lambda label: lambda done, total: progress.bar(label, done, total),
        )
        if replications and chosen.picks
        else None
    )
    for path, document in (
        (roster_file, {"roster": chosen.roster()}),
        (scenario_file, chosen.scenario().to_json()),
    ):
        if path is not None:
            Path(path).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
            progress.note(f"wrote {path}")
    if as_json:
        answer = {"recommendation": chosen.to_json()}
        if verdict is not None:
            answer["simulation"] = verdict.to_json()
        click.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_recommendation(chosen))
        if verdict is not None:
            click.echo("")
            click.echo(render(world, assumptions, verdict))
    progress.note(f"done in {progress.elapsed:.1f} s")


@cli.group()
def roster() -> None:
    """Rosters: apply a draft roster as it is."""


@roster.command("publish")
@click.argument("roster_file", type=click.Path(exists=True, dir_okay=False))
def roster_publish(roster_file: str) -> None:
    """Publish every clinic of a draft roster (JSON: {"roster": [publishRoster inputs]}, as
    `care-graph recommend --roster-file` writes), all or none, each within the rostering
    rules; the new slots are offered to the waiting list at once."""
    from care_graph.domain import offers
    from care_graph.domain.booking import Actor
    from care_graph.domain.capacity import RosterEntry, publish_rosters

    try:
        document = orjson.loads(Path(roster_file).read_bytes())
        if not isinstance(document, dict) or not isinstance(document.get("roster"), list):
            raise ValueError('a roster file is an object with a "roster" list')
        entries = [RosterEntry.from_json(entry) for entry in document["roster"]]
    except (ValueError, orjson.JSONDecodeError) as error:
        raise click.UsageError(str(error)) from error
    settings = Settings.from_environment()
    actor = Actor("care-graph roster", Role.SCHEDULER)

    async def publish(connection: Any) -> tuple[list[int], dict[int, int]]:
        slots = await publish_rosters(connection, actor, entries)
        held = await offers.offer_slots(connection, slots, actor, model=settings.cost_model)
        return slots, held

    with database_url(settings) as url:
        slots, held = _run(_with_connection(url, publish))
    click.echo(
        f"published {len(entries)} roster entries: {len(slots):,} slots,"
        f" {len(held):,} held at once for waiting referrals"
    )


def main() -> None:
    """Entry point: run the command; an expected failure prints one line and exits non-zero."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("care-graph: aborted", err=True)
        sys.exit(1)
    except click.ClickException as error:
        click.echo(f"care-graph: error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except CareGraphError as error:
        click.echo(f"care-graph: error: {error.message} ({error.code})", err=True)
        sys.exit(1)
    except Exception as error:
        click.echo(f"care-graph: unexpected error ({type(error).__name__}): {error}", err=True)
        sys.exit(2)
