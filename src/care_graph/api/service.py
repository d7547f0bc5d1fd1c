"""Executing one GraphQL request: parse and validate (cached), coerce the variables, then the
compiled path when the compiler covers the operation, the resolver path otherwise; errors masked
and coded."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import orjson
import strawberry
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import VariableValues, get_variable_values
from graphql.validation import NoSchemaIntrospectionCustomRule

from care_graph.api.args import RequestValues
from care_graph.api.catalog import Catalog
from care_graph.api.compiler import Compiler, NotCompilable, Plan, shape_of
from care_graph.api.errors import ApiError, ApiErrorCode, RequestLabel, client_error, logger
from care_graph.api.limits import check_cost, check_limits, check_sizes
from care_graph.api.policy import policy_for
from care_graph.api.resolve import Loaders
from care_graph.auth import Viewer
from care_graph.config import Limits
from care_graph.db.pool import CONNECTION_FAULTS, Connection, ConnectionSource, unavailable
from care_graph.db.row_security import see_as_viewer
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.lru import Lru
from care_graph.matching.cost import CostModel
from care_graph.observability import metrics, tracing


@dataclass(slots=True)
class RequestContext:
    """What resolvers see as ``info.context``."""

    loaders: Loaders
    viewer: Viewer
    cost_model: CostModel


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that passed every check: its document, operation and coerced variables."""

    query: str
    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any] | None
    operation_name: str | None  # as the request named it
    coerced: VariableValues
    label: RequestLabel


@dataclass(frozen=True, slots=True)
class Refused:
    """A request stopped before any work, and why."""

    errors: list[GraphQLError]
    label: RequestLabel


@dataclass(frozen=True, slots=True)
class Answer:
    """A response body; ``refused``: the request was stopped before execution began (a
    request error, which GraphQL over HTTP answers with a 4xx status)."""

    body: bytes
    refused: bool


@dataclass(frozen=True, slots=True)
class Prepared:
    """A parsed and validated document, or the errors that stop it."""

    document: DocumentNode | None
    errors: list[GraphQLError]


# requests come here over HTTP; subscriptions need a connection that stays open
OVER_WEBSOCKET = (
    "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql, not over HTTP"
)


def error_response(
    errors: list[GraphQLError],
    data: Any = None,
    with_data: bool = False,
    label: RequestLabel | None = None,
) -> bytes:
    """A GraphQL response body holding these errors (and ``data`` when execution began)."""
    body: dict[str, Any] = {"errors": [client_error(error, label) for error in errors]}
    if with_data:
        body["data"] = data
    return orjson.dumps(body)


class GraphQLService:
    """Runs GraphQL requests against one schema, with caches that live as long as the process."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        introspection: bool = True,
        limits: Limits | None = None,
        cache_size: int = 512,
        cost_model: CostModel | None = None,
        row_filters: bool = True,
    ) -> None:
        """``row_filters`` False leaves whose rows a caller sees to PostgreSQL's row-level
        security alone: only for the test that proves it suffices."""
        self.schema = schema
        self.row_filters = row_filters
        self.cost_model = cost_model or CostModel()
        self.graphql_schema: GraphQLSchema = schema._schema
        self.catalog = Catalog.from_schema(self.graphql_schema)
        self.compiler = Compiler(self.graphql_schema, self.catalog)
        self.limits = limits or Limits()
        self.rules = list(specified_rules)
        if not introspection:
            self.rules.append(NoSchemaIntrospectionCustomRule)
        self._prepared: Lru[str, Prepared] = Lru(cache_size)
        self._plans: Lru[tuple[Any, ...], Plan] = Lru(cache_size * 4)
        self._not_compilable: Lru[tuple[str, str | None], bool] = Lru(cache_size)
        # where compiled queries that write nothing are read: standbys (db/replicas.py), set by
        # the app when CARE_GRAPH_REPLICA_URLS names some; None reads on the primary
        self.reads: ConnectionSource | None = None

    def prepare(self, query: str) -> Prepared:
        """Parse and validate a document, once per distinct text."""
        prepared = self._prepared.get(query)
        if prepared is None:
            prepared = self._prepare(query)
            self._prepared.put(query, prepared)
        return prepared

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError as error:
            return Prepared(
                None,
                [
                    ApiError(
                        ApiErrorCode.GRAPHQL_PARSE_FAILED,
                        error.message,
                        nodes=error.nodes,
                        source=error.source,
                        positions=error.positions,
                    )
                ],
            )
        errors = [
            ApiError(ApiErrorCode.GRAPHQL_VALIDATION_FAILED, error.message, nodes=error.nodes)
            for error in validate(self.graphql_schema, document, self.rules)
        ]
        errors = errors or list(check_limits(document, self.limits))
        return Prepared(document, list(errors))

    def admit(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
        *,
        streaming: bool = False,
        writes: bool = True,
        request_id: str | None = None,
    ) -> Admitted | Refused:
        """Every check a request passes before any work, the same for every transport: sizes,
        parsing and validation (cached), depth and aliases, the operation, its variables, and
        its cost against the caller's budget. ``streaming``: the transport can carry a
        subscription (WebSocket can, HTTP cannot); ``writes`` False: a mutation is refused
        (GET), before its variables or cost are looked at; ``request_id``: the transport's
        (api/request_ids.py), or a fresh one."""
        label = RequestLabel.new(None, request_id)  # named from the document, never the request
        size_error = check_sizes(query, variables, self.limits)
        if size_error is not None:
            return Refused([size_error], label)
        prepared = self.prepare(query)
        if prepared.document is None or prepared.errors:
            return Refused(prepared.errors, label)
        operation = get_operation_ast(prepared.document, operation_name)
        if operation is None:
            return Refused(
                [
                    ApiError(
                        ApiErrorCode.OPERATION_NOT_FOUND,
                        f"no operation named {operation_name!r}"
                        if operation_name
                        else "the document has several operations: name one with operationName",
                    )
                ],
                label,
            )
        if operation.name is not None:  # name the log lines even when the request did not
            label = replace(label, operation_name=operation.name.value)
        streams = operation.operation is OperationType.SUBSCRIPTION
        if streams and not streaming:
            return Refused([ApiError(ApiErrorCode.OPERATION_NOT_SUPPORTED, OVER_WEBSOCKET)], label)
        if operation.operation is OperationType.MUTATION and not writes:
            return Refused(
                [
                    ApiError(
                        ApiErrorCode.METHOD_NOT_ALLOWED,
                        "a mutation is not run over GET: send it with POST",
                    )
                ],
                label,
            )
        # variables are coerced once, here, before the compiled and resolver paths part:
        # graphql-core's coercion errors carry an original error, so the resolver path would
        # take them for unexpected failures and mask them
        coerced = get_variable_values(
            self.graphql_schema, operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            return Refused(
                [ApiError(ApiErrorCode.BAD_USER_INPUT, error.message) for error in coerced], label
            )
        too_costly = check_cost(
            self.graphql_schema,
            prepared.document,
            operation,
            coerced.coerced,
            self.limits.budget_for(viewer.role),
            self.limits,
        )
        if too_costly is not None:
            return Refused([too_costly], label)
        return Admitted(
            query, prepared.document, operation, variables, operation_name, coerced, label
        )

    async def execute(
        self,
        database: ConnectionSource,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
    ) -> Answer:
        """Run one query or mutation and return the response; a connection is borrowed from
        ``database`` only for as long as the request needs one (``{ __typename }`` does not)."""
        admitted = self.admit(query, variables, operation_name, viewer)
        if isinstance(admitted, Refused):
            return Answer(error_response(admitted.errors, label=admitted.label), refused=True)
        return Answer(await self.run(database, admitted, viewer), refused=False)

    async def run(self, database: ConnectionSource, admitted: Admitted, viewer: Viewer) -> bytes:
        """The response body of an admitted operation, counted by name and outcome code
        (observability/metrics.py) and traced as one span (observability/tracing.py)."""
        started, kind = metrics.now(), admitted.operation.operation.value
        name = admitted.label.operation_name
        with tracing.operation(kind, name) as span:  # its statements are its children
            try:
                body = await self._run(database, admitted, viewer)
            except CareGraphError as error:
                metrics.observe_request(kind, name, error.code, started)
                tracing.outcome(span, error.code)
                raise
            code = metrics.outcome_of(body)
            metrics.observe_request(kind, name, code, started)
            tracing.outcome(span, code)
        return body

    async def _run(self, database: ConnectionSource, admitted: Admitted, viewer: Viewer) -> bytes:
        """The response body of an admitted query or mutation: the compiled path when the
        compiler covers it, the resolver path otherwise. A lost or busy database raises
        SERVICE_UNAVAILABLE (CareGraphError) for the transport to answer as it does."""
        key = (admitted.query, admitted.operation_name)
        try:
            if self._not_compilable.get(key) is None:
                compiled = await self._execute_compiled(database, admitted, viewer)
                if compiled is not None:
                    return compiled
            async with database.acquire() as connection:
                return await self._execute_resolved(connection, admitted, viewer)
        except CONNECTION_FAULTS as error:
            logger.warning(
                "lost the database connection in %s (%s)",
                admitted.label.operation_name or "an operation",
                type(error).__name__,
            )
            if admitted.operation.operation is OperationType.MUTATION:
                raise CareGraphError(
                    ErrorCode.OUTCOME_UNKNOWN,
                    "the database connection was lost while this mutation ran, so it may or may"
                    " not have happened: send it again with the same idempotencyKey, which"
                    " answers what was done and never does it twice, or read the record",
                ) from None
            raise unavailable("the database connection was lost") from None

    async def _execute_compiled(
        self, database: ConnectionSource, admitted: Admitted, viewer: Viewer
    ) -> bytes | None:
        """The response from the compiled path, or None when the compiler does not cover the
        operation."""
        query, operation_name, coerced = (
            admitted.query,
            admitted.operation_name,
            admitted.coerced,
        )
        key = (query, operation_name, viewer.role, shape_of(coerced))
        try:
            plan = self._plans.get(key)
            if plan is None:
                plan = self.compiler.compile(
                    admitted.document,
                    admitted.operation,
                    coerced,
                    policy_for(viewer, filtered=self.row_filters),
                )
                self._plans.put(key, plan)
            values = plan.values(RequestValues(coerced, viewer))
        except NotCompilable:
            self._not_compilable.put((query, operation_name), True)
            return None
        except ApiError as error:
            return error_response([error], with_data=True, label=admitted.label)
        if plan.static is not None:
            return b'{"data":' + plan.static + b"}"
        # a query that writes nothing may run on a standby (db/replicas.py)
        reading = admitted.operation.operation is OperationType.QUERY and plan.only_reads
        source = self.reads if self.reads is not None and reading else database
        try:
            async with source.acquire() as connection, connection.transaction():
                await see_as_viewer(connection, viewer.role, viewer.subject, viewer.patient_id)
                data: str = await connection.fetchval(plan.sql, *values)
        except CONNECTION_FAULTS:
            raise
        except asyncpg.PostgresError as error:
            return error_response(
                [GraphQLError("failed", original_error=error)],
                with_data=True,
                label=admitted.label,
            )
        return b'{"data":' + data.encode() + b"}"

    async def execute_resolved(
        self,
        connection: Connection,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
    ) -> Answer:
        """Run one request on the resolver path only (the compiler's oracle in tests)."""
        admitted = self.admit(query, variables, operation_name, viewer)
        if isinstance(admitted, Refused):
            return Answer(error_response(admitted.errors, label=admitted.label), refused=True)
        return Answer(await self._execute_resolved(connection, admitted, viewer), refused=False)

    async def _execute_resolved(
        self, connection: Connection, admitted: Admitted, viewer: Viewer
    ) -> bytes:
        loaders = Loaders(connection, self.catalog, viewer, filtered=self.row_filters)
        context = RequestContext(loaders, viewer, self.cost_model)
        # one transaction: the audit events of what is read commit with the request, or not at all
        async with connection.transaction():
            try:
                result = await self.schema.execute(
                    admitted.query,
                    variable_values=admitted.variables,
                    context_value=context,
                    operation_name=admitted.operation_name,
                )
            finally:
                await loaders.settle()
        for error in result.errors or ():
            if isinstance(error.original_error, CONNECTION_FAULTS):
                raise error.original_error
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [client_error(error, admitted.label) for error in result.errors]
        body["data"] = result.data
        return orjson.dumps(body)
