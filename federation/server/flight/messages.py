"""The Flight SQL protobuf messages Quanta's server reads and writes, declared here as data.

Flight SQL commands travel as ``google.protobuf.Any`` (type URL
``type.googleapis.com/arrow.flight.protocol.sql.<Name>``) inside a FlightDescriptor's command, a Ticket or
an Action's body. No Python package ships these classes (and ``pyarrow.flight`` exposes none of them), so
this module declares the messages the server uses, with the field numbers of the specification
(apache/arrow ``format/FlightSql.proto`` and ``format/Flight.proto``), and builds real protobuf classes
from that declaration at import: a ``FileDescriptorProto`` added to a private ``DescriptorPool`` (so a
library registering the same names in the default pool never clashes), then
``message_factory.GetMessageClass``. Parsing and serialising is the protobuf runtime's, not ours.

Only what the server needs is declared; a field another version adds is kept as an unknown field and
ignored. Two simplifications keep the wire format while avoiding a copy of Flight.proto:
``CancelFlightInfoRequest.info`` (an embedded ``FlightInfo``) is declared as ``bytes`` (the same bytes on
the wire: ``pyarrow.flight.FlightInfo.deserialize`` reads them), and enums are declared as ``int32``
(the same varint), with their values as constants below.

    command = unpack(descriptor.command)           # -> (name, message), MalformedMessage if it is not one
    body = pack(messages.TicketStatementQuery(statement_handle=handle))
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

SQL_PACKAGE = "arrow.flight.protocol.sql"
FLIGHT_PACKAGE = "arrow.flight.protocol"
TYPE_URL_PREFIX = "type.googleapis.com/"

# field: (name, number, type, label); label "optional" is proto3's explicit presence (HasField works)
_F = descriptor_pb2.FieldDescriptorProto
STRING, BYTES, BOOL, INT32, INT64, UINT32 = (_F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_BOOL, _F.TYPE_INT32,
                                             _F.TYPE_INT64, _F.TYPE_UINT32)
ONE, OPTIONAL, REPEATED = "one", "optional", "repeated"

SQL_MESSAGES: dict[str, tuple[tuple[str, int, int, str], ...]] = {
    # statements
    "CommandStatementQuery": (("query", 1, STRING, ONE), ("transaction_id", 2, BYTES, OPTIONAL)),
    "TicketStatementQuery": (("statement_handle", 1, BYTES, ONE),),
    "CommandStatementUpdate": (("query", 1, STRING, ONE), ("transaction_id", 2, BYTES, OPTIONAL)),
    "CommandStatementSubstraitPlan": (),  # refused: only its name is read
    "CommandStatementIngest": (),  # refused: only its name is read
    "DoPutUpdateResult": (("record_count", 1, INT64, ONE),),
    # prepared statements
    "ActionCreatePreparedStatementRequest": (("query", 1, STRING, ONE), ("transaction_id", 2, BYTES, OPTIONAL)),
    "ActionCreatePreparedStatementResult": (("prepared_statement_handle", 1, BYTES, ONE),
                                            ("dataset_schema", 2, BYTES, ONE),
                                            ("parameter_schema", 3, BYTES, ONE)),
    "ActionClosePreparedStatementRequest": (("prepared_statement_handle", 1, BYTES, ONE),),
    "ActionCreatePreparedSubstraitPlanRequest": (),  # refused
    "CommandPreparedStatementQuery": (("prepared_statement_handle", 1, BYTES, ONE),),
    "CommandPreparedStatementUpdate": (("prepared_statement_handle", 1, BYTES, ONE),),
    "DoPutPreparedStatementResult": (("prepared_statement_handle", 1, BYTES, OPTIONAL),),
    # transactions and savepoints: refused (a read-only server)
    "ActionBeginTransactionRequest": (),
    "ActionBeginSavepointRequest": (("transaction_id", 1, BYTES, ONE), ("name", 2, STRING, ONE)),
    "ActionEndTransactionRequest": (("transaction_id", 1, BYTES, ONE), ("action", 2, INT32, ONE)),
    "ActionEndSavepointRequest": (("savepoint_id", 1, BYTES, ONE), ("action", 2, INT32, ONE)),
    # cancellation (Flight SQL's own, deprecated since Arrow 13 for CancelFlightInfo, still sent by drivers)
    "ActionCancelQueryRequest": (("info", 1, BYTES, ONE),),  # a serialized FlightInfo
    "ActionCancelQueryResult": (("result", 1, INT32, ONE),),  # CancelResult
    # catalog commands
    "CommandGetCatalogs": (),
    "CommandGetDbSchemas": (("catalog", 1, STRING, OPTIONAL), ("db_schema_filter_pattern", 2, STRING, OPTIONAL)),
    "CommandGetTables": (("catalog", 1, STRING, OPTIONAL), ("db_schema_filter_pattern", 2, STRING, OPTIONAL),
                         ("table_name_filter_pattern", 3, STRING, OPTIONAL), ("table_types", 4, STRING, REPEATED),
                         ("include_schema", 5, BOOL, ONE)),
    "CommandGetTableTypes": (),
    "CommandGetPrimaryKeys": (("catalog", 1, STRING, OPTIONAL), ("db_schema", 2, STRING, OPTIONAL),
                              ("table", 3, STRING, ONE)),
    "CommandGetExportedKeys": (("catalog", 1, STRING, OPTIONAL), ("db_schema", 2, STRING, OPTIONAL),
                               ("table", 3, STRING, ONE)),
    "CommandGetImportedKeys": (("catalog", 1, STRING, OPTIONAL), ("db_schema", 2, STRING, OPTIONAL),
                               ("table", 3, STRING, ONE)),
    "CommandGetCrossReference": (("pk_catalog", 1, STRING, OPTIONAL), ("pk_db_schema", 2, STRING, OPTIONAL),
                                 ("pk_table", 3, STRING, ONE), ("fk_catalog", 4, STRING, OPTIONAL),
                                 ("fk_db_schema", 5, STRING, OPTIONAL), ("fk_table", 6, STRING, ONE)),
    "CommandGetSqlInfo": (("info", 1, UINT32, REPEATED),),
    "CommandGetXdbcTypeInfo": (("data_type", 1, INT32, OPTIONAL),),
}

# Flight RPC (Flight.proto) messages that pyarrow.flight does not expose
FLIGHT_MESSAGES: dict[str, tuple[tuple[str, int, int, str], ...]] = {
    "CancelFlightInfoRequest": (("info", 1, BYTES, ONE),),  # a serialized FlightInfo
    "CancelFlightInfoResult": (("status", 1, INT32, ONE),),  # CancelStatus
}

# CancelStatus (Flight.proto) and ActionCancelQueryResult.CancelResult share their values
CANCEL_UNSPECIFIED, CANCEL_CANCELLED, CANCEL_CANCELLING, CANCEL_NOT_CANCELLABLE = 0, 1, 2, 3

# Flight SQL's action types (ActionType.type)
CREATE_PREPARED_STATEMENT = "CreatePreparedStatement"
CLOSE_PREPARED_STATEMENT = "ClosePreparedStatement"
CANCEL_QUERY = "CancelQuery"
CANCEL_FLIGHT_INFO = "CancelFlightInfo"  # Flight RPC's own action
REFUSED_ACTIONS = ("BeginTransaction", "EndTransaction", "BeginSavepoint", "EndSavepoint",
                   "CreatePreparedSubstraitPlan")


class MalformedMessage(ValueError):
    """Bytes that are not the Flight SQL message expected (the server answers INVALID_ARGUMENT)."""


def _file(package: str, name: str, messages: dict) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    for message_name, fields in messages.items():
        message = proto.message_type.add(name=message_name)
        for field_name, number, kind, label in fields:
            field = message.field.add(name=field_name, number=number, type=kind,
                                      label=_F.LABEL_REPEATED if label == REPEATED else _F.LABEL_OPTIONAL)
            if label == OPTIONAL:  # proto3 "optional": a synthetic one-field oneof gives it presence
                field.proto3_optional = True
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{field_name}")
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file(SQL_PACKAGE, "quanta/flight_sql.proto", SQL_MESSAGES))
_POOL.Add(_file(FLIGHT_PACKAGE, "quanta/flight.proto", FLIGHT_MESSAGES))

CLASSES: dict[str, type[Message]] = {}  # short name -> class
for _package, _messages in ((SQL_PACKAGE, SQL_MESSAGES), (FLIGHT_PACKAGE, FLIGHT_MESSAGES)):
    for _name in _messages:
        CLASSES[_name] = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_package}.{_name}"))
        globals()[_name] = CLASSES[_name]


def type_url(name: str) -> str:
    return f"{TYPE_URL_PREFIX}{SQL_PACKAGE}.{name}"


def pack(message: Message) -> bytes:
    """``message`` wrapped in a ``google.protobuf.Any`` and serialised (commands, tickets, action bodies)."""
    return any_pb2.Any(type_url=TYPE_URL_PREFIX + message.DESCRIPTOR.full_name,
                       value=message.SerializeToString()).SerializeToString()


def unpack(data: bytes) -> tuple[str, Message]:
    """The (short name, message) of a serialised ``Any`` holding a Flight SQL message. ``MalformedMessage``
    when the bytes are not an ``Any``, name no Flight SQL message, or do not parse as the one they name;
    a Flight SQL message this server does not declare is returned as (name, None)."""
    wrapper = any_pb2.Any()
    try:
        wrapper.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError):
        raise MalformedMessage("not a Flight SQL command (a google.protobuf.Any)") from None
    prefix = f"{TYPE_URL_PREFIX}{SQL_PACKAGE}."
    if not wrapper.type_url.startswith(prefix):
        shown = wrapper.type_url[:100] or "an empty type URL"
        raise MalformedMessage(f"not a Flight SQL command: {shown!r}")
    name = wrapper.type_url[len(prefix):]
    cls = CLASSES.get(name) if name in SQL_MESSAGES else None
    if cls is None:
        return name[:100], None
    return name, parse(cls, wrapper.value, name)


def parse(cls: type[Message], data: bytes, what: str | None = None) -> Message:
    """``data`` parsed as ``cls`` (a message without an ``Any``: CancelFlightInfo's body, DoPut's results)."""
    message = cls()
    try:
        message.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError):
        raise MalformedMessage(f"malformed {what or cls.DESCRIPTOR.name} message") from None
    return message


def optional(message: Message, field: str) -> object | None:
    """The value of an ``optional`` field, None when the client did not set it."""
    return getattr(message, field) if message.HasField(field) else None
