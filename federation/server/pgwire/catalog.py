"""The PostgreSQL catalog a client sees: ``pg_catalog`` and ``information_schema`` emulated from the
mesh (each quantum a schema, each dataset a table, comments from the contracts), filtered by the
principal's grants and column denials.

The catalog of a principal is a scratch database of the engine (``engine/scratch.py``: Arrow tables
and macros, locked down, built once per principal and mesh version). A client's catalog query is
parsed with sqlglot (PostgreSQL), rewritten (``pg_catalog.x`` -> our tables; ``::regclass`` and
friends; catalog functions such as ``format_type``, ``pg_get_userbyid``, ``pg_table_is_visible``,
``obj_description``, ``has_table_privilege``, ``current_setting`` -> macros or the session's values;
``OPERATOR(pg_catalog.~)`` -> a regular expression), verified (``catalog_verify.py``: catalog
relations, CTEs in scope, allow-listed functions and the catalog's macros only), then run with the
server's time-out and the connection's cancel, and audited. The catalog never holds data from the
mesh, only its dictionary; which datasets and columns it lists, and what the ``has_*_privilege``
functions answer, are the governance decisions a query of them gets.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlglot.expressions as exp
from cachetools import LRUCache

from ... import errors
from ...engine.registry import split_dotted
from ...engine.scratch import ScratchDatabase
from ...errors import ProgrammingError, StatementRefused, UnknownObject
from ...governance import audit, listing
from ...platform import Cancellation
from ...result import Result
from ...rewrite.postgres import figure_colname, quote_literal
from . import types as pgt
from .catalog_verify import verify
from .rows import RowSource
from .session import SERVER_VERSION, SOURCE, search_path
from .timeouts import effective_timeout

log = logging.getLogger("quanta.pgwire.catalog")

PG_CATALOG, PUBLIC, INFORMATION_SCHEMA, SYSTEM_SCHEMA = 11, 2200, 13000, 15000
FIRST_SYSTEM_TABLE = 30000
OWNER = 10
FIRST_SCHEMA, FIRST_TABLE, FIRST_ROWTYPE = 16384, 20000, 40000
PG_CLASS_OID, PG_NAMESPACE_OID, PG_DATABASE_OID = 1259, 2615, 1262
VERSION = f"PostgreSQL {SERVER_VERSION} on x86_64-pc-linux-gnu, compiled by Quanta (a data-mesh federation layer)"

SYSTEM_CLASSES = {"pg_class": 1259, "pg_namespace": 2615, "pg_database": 1262, "pg_proc": 1255, "pg_type": 1247,
                  "pg_attribute": 1249, "pg_constraint": 2606, "pg_authid": 1260, "pg_description": 2609,
                  "pg_index": 2610, "pg_am": 2601, "pg_trigger": 2620, "pg_rewrite": 2618}

# -- table definitions: name -> column spec (DuckDB types) -------------------------------------------------

PG_TABLES: dict[str, str] = {
    "pg_namespace": "oid BIGINT, nspname VARCHAR, nspowner BIGINT, nspacl VARCHAR[]",
    "pg_class": "oid BIGINT, relname VARCHAR, relnamespace BIGINT, reltype BIGINT, reloftype BIGINT, "
                "relowner BIGINT, relam BIGINT, relfilenode BIGINT, reltablespace BIGINT, relpages INTEGER, "
                "reltuples REAL, relallvisible INTEGER, reltoastrelid BIGINT, relhasindex BOOLEAN, "
                "relisshared BOOLEAN, relpersistence VARCHAR, relkind VARCHAR, relnatts SMALLINT, "
                "relchecks SMALLINT, relhasrules BOOLEAN, relhastriggers BOOLEAN, relhassubclass BOOLEAN, "
                "relrowsecurity BOOLEAN, relforcerowsecurity BOOLEAN, relispopulated BOOLEAN, "
                "relreplident VARCHAR, relispartition BOOLEAN, relrewrite BIGINT, relfrozenxid BIGINT, "
                "relminmxid BIGINT, relacl VARCHAR[], reloptions VARCHAR[], relpartbound VARCHAR",
    "pg_attribute": "attrelid BIGINT, attname VARCHAR, atttypid BIGINT, attstattarget INTEGER, attlen SMALLINT, "
                    "attnum SMALLINT, attndims INTEGER, attcacheoff INTEGER, atttypmod INTEGER, attbyval BOOLEAN, "
                    "attalign VARCHAR, attstorage VARCHAR, attcompression VARCHAR, attnotnull BOOLEAN, "
                    "atthasdef BOOLEAN, atthasmissing BOOLEAN, attidentity VARCHAR, attgenerated VARCHAR, "
                    "attisdropped BOOLEAN, attislocal BOOLEAN, attinhcount INTEGER, attcollation BIGINT, "
                    "attacl VARCHAR[], attoptions VARCHAR[], attfdwoptions VARCHAR[], attmissingval VARCHAR",
    "pg_type": "oid BIGINT, typname VARCHAR, typnamespace BIGINT, typowner BIGINT, typlen SMALLINT, "
               "typbyval BOOLEAN, typtype VARCHAR, typcategory VARCHAR, typispreferred BOOLEAN, "
               "typisdefined BOOLEAN, typdelim VARCHAR, typrelid BIGINT, typsubscript BIGINT, typelem BIGINT, "
               "typarray BIGINT, typinput BIGINT, typoutput BIGINT, typreceive BIGINT, typsend BIGINT, "
               "typmodin BIGINT, typmodout BIGINT, typanalyze BIGINT, typalign VARCHAR, typstorage VARCHAR, "
               "typnotnull BOOLEAN, typbasetype BIGINT, typtypmod INTEGER, typndims INTEGER, "
               "typcollation BIGINT, typdefaultbin VARCHAR, typdefault VARCHAR, typacl VARCHAR[]",
    "pg_database": "oid BIGINT, datname VARCHAR, datdba BIGINT, encoding INTEGER, datlocprovider VARCHAR, "
                   "datistemplate BOOLEAN, datallowconn BOOLEAN, datconnlimit INTEGER, datfrozenxid BIGINT, "
                   "datminmxid BIGINT, dattablespace BIGINT, datcollate VARCHAR, datctype VARCHAR, "
                   "daticulocale VARCHAR, datcollversion VARCHAR, datacl VARCHAR[]",
    "pg_roles": "oid BIGINT, rolname VARCHAR, rolsuper BOOLEAN, rolinherit BOOLEAN, rolcreaterole BOOLEAN, "
                "rolcreatedb BOOLEAN, rolcanlogin BOOLEAN, rolreplication BOOLEAN, rolconnlimit INTEGER, "
                "rolpassword VARCHAR, rolvaliduntil TIMESTAMPTZ, rolbypassrls BOOLEAN, rolconfig VARCHAR[]",
    "pg_authid": "oid BIGINT, rolname VARCHAR, rolsuper BOOLEAN, rolinherit BOOLEAN, rolcreaterole BOOLEAN, "
                 "rolcreatedb BOOLEAN, rolcanlogin BOOLEAN, rolreplication BOOLEAN, rolbypassrls BOOLEAN, "
                 "rolconnlimit INTEGER, rolpassword VARCHAR, rolvaliduntil TIMESTAMPTZ",
    "pg_user": "usename VARCHAR, usesysid BIGINT, usecreatedb BOOLEAN, usesuper BOOLEAN, userepl BOOLEAN, "
               "usebypassrls BOOLEAN, passwd VARCHAR, valuntil TIMESTAMPTZ, useconfig VARCHAR[]",
    "pg_auth_members": "roleid BIGINT, member BIGINT, grantor BIGINT, admin_option BOOLEAN",
    "pg_description": "objoid BIGINT, classoid BIGINT, objsubid INTEGER, description VARCHAR",
    "pg_shdescription": "objoid BIGINT, classoid BIGINT, description VARCHAR",
    "pg_index": "indexrelid BIGINT, indrelid BIGINT, indnatts SMALLINT, indnkeyatts SMALLINT, indisunique BOOLEAN, "
                "indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, indisexclusion BOOLEAN, indimmediate BOOLEAN, "
                "indisclustered BOOLEAN, indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN, "
                "indislive BOOLEAN, indisreplident BOOLEAN, indkey SMALLINT[], indcollation BIGINT[], "
                "indclass BIGINT[], indoption SMALLINT[], indexprs VARCHAR, indpred VARCHAR",
    "pg_constraint": "oid BIGINT, conname VARCHAR, connamespace BIGINT, contype VARCHAR, condeferrable BOOLEAN, "
                     "condeferred BOOLEAN, convalidated BOOLEAN, conrelid BIGINT, contypid BIGINT, conindid BIGINT, "
                     "conparentid BIGINT, confrelid BIGINT, confupdtype VARCHAR, confdeltype VARCHAR, "
                     "confmatchtype VARCHAR, conislocal BOOLEAN, coninhcount INTEGER, connoinherit BOOLEAN, "
                     "conkey SMALLINT[], confkey SMALLINT[], conpfeqop BIGINT[], conppeqop BIGINT[], "
                     "conffeqop BIGINT[], confdelsetcols SMALLINT[], conexclop BIGINT[], conbin VARCHAR",
    "pg_am": "oid BIGINT, amname VARCHAR, amhandler BIGINT, amtype VARCHAR",
    "pg_proc": "oid BIGINT, proname VARCHAR, pronamespace BIGINT, proowner BIGINT, prolang BIGINT, "
               "procost REAL, prorows REAL, provariadic BIGINT, prosupport BIGINT, prokind VARCHAR, "
               "prosecdef BOOLEAN, proleakproof BOOLEAN, proisstrict BOOLEAN, proretset BOOLEAN, "
               "provolatile VARCHAR, proparallel VARCHAR, pronargs SMALLINT, pronargdefaults SMALLINT, "
               "prorettype BIGINT, proargtypes BIGINT[], proallargtypes BIGINT[], proargmodes VARCHAR[], "
               "proargnames VARCHAR[], proargdefaults VARCHAR, protrftypes BIGINT[], prosrc VARCHAR, "
               "probin VARCHAR, prosqlbody VARCHAR, proconfig VARCHAR[], proacl VARCHAR[]",
    "pg_matviews": "schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, tablespace VARCHAR, "
                   "hasindexes BOOLEAN, ispopulated BOOLEAN, definition VARCHAR",
    "pg_views": "schemaname VARCHAR, viewname VARCHAR, viewowner VARCHAR, definition VARCHAR",
    "pg_tables": "schemaname VARCHAR, tablename VARCHAR, tableowner VARCHAR, tablespace VARCHAR, "
                 "hasindexes BOOLEAN, hasrules BOOLEAN, hastriggers BOOLEAN, rowsecurity BOOLEAN",
    "pg_indexes": "schemaname VARCHAR, tablename VARCHAR, indexname VARCHAR, tablespace VARCHAR, indexdef VARCHAR",
    "pg_stat_user_tables": "relid BIGINT, schemaname VARCHAR, relname VARCHAR, seq_scan BIGINT, "
                           "seq_tup_read BIGINT, idx_scan BIGINT, idx_tup_fetch BIGINT, n_tup_ins BIGINT, "
                           "n_tup_upd BIGINT, n_tup_del BIGINT, n_live_tup BIGINT, n_dead_tup BIGINT",
    "pg_inherits": "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN",
    "pg_attrdef": "oid BIGINT, adrelid BIGINT, adnum SMALLINT, adbin VARCHAR",
    "pg_collation": "oid BIGINT, collname VARCHAR, collnamespace BIGINT, collowner BIGINT, collprovider VARCHAR, "
                    "collisdeterministic BOOLEAN, collencoding INTEGER, collcollate VARCHAR, collctype VARCHAR",
    "pg_tablespace": "oid BIGINT, spcname VARCHAR, spcowner BIGINT, spcacl VARCHAR[], spcoptions VARCHAR[]",
    "pg_extension": "oid BIGINT, extname VARCHAR, extowner BIGINT, extnamespace BIGINT, extrelocatable BOOLEAN, "
                    "extversion VARCHAR, extconfig BIGINT[], extcondition VARCHAR[]",
    "pg_enum": "oid BIGINT, enumtypid BIGINT, enumsortorder REAL, enumlabel VARCHAR",
    "pg_range": "rngtypid BIGINT, rngsubtype BIGINT, rngmultitypid BIGINT, rngcollation BIGINT, "
                "rngsubopc BIGINT, rngcanonical BIGINT, rngsubdiff BIGINT",
    "pg_depend": "classid BIGINT, objid BIGINT, objsubid INTEGER, refclassid BIGINT, refobjid BIGINT, "
                 "refobjsubid INTEGER, deptype VARCHAR",
    "pg_trigger": "oid BIGINT, tgrelid BIGINT, tgparentid BIGINT, tgname VARCHAR, tgfoid BIGINT, tgtype SMALLINT, "
                  "tgenabled VARCHAR, tgisinternal BOOLEAN, tgconstrrelid BIGINT, tgconstrindid BIGINT, "
                  "tgconstraint BIGINT, tgdeferrable BOOLEAN, tginitdeferred BOOLEAN, tgnargs SMALLINT",
    "pg_rewrite": "oid BIGINT, rulename VARCHAR, ev_class BIGINT, ev_type VARCHAR, ev_enabled VARCHAR, "
                  "is_instead BOOLEAN, ev_qual VARCHAR, ev_action VARCHAR",
    "pg_policy": "oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, polpermissive BOOLEAN, "
                 "polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR",
    "pg_foreign_table": "ftrelid BIGINT, ftserver BIGINT, ftoptions VARCHAR[]",
    "pg_foreign_server": "oid BIGINT, srvname VARCHAR, srvowner BIGINT, srvfdw BIGINT",
    "pg_foreign_data_wrapper": "oid BIGINT, fdwname VARCHAR, fdwowner BIGINT",
    "pg_partitioned_table": "partrelid BIGINT, partstrat VARCHAR, partnatts SMALLINT, partdefid BIGINT, "
                            "partattrs SMALLINT[]",
    "pg_statistic_ext": "oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, stxowner BIGINT, "
                        "stxstattarget INTEGER, stxkeys SMALLINT[], stxkind VARCHAR[]",
    "pg_publication": "oid BIGINT, pubname VARCHAR, pubowner BIGINT, puballtables BOOLEAN, pubinsert BOOLEAN, "
                      "pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN",
    "pg_publication_rel": "oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs SMALLINT[]",
    "pg_publication_namespace": "oid BIGINT, pnpubid BIGINT, pnnspid BIGINT",
    "pg_subscription": "oid BIGINT, subdbid BIGINT, subname VARCHAR, subowner BIGINT, subenabled BOOLEAN",
    "pg_sequence": "seqrelid BIGINT, seqtypid BIGINT, seqstart BIGINT, seqincrement BIGINT, seqmax BIGINT, "
                   "seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN",
    "pg_sequences": "schemaname VARCHAR, sequencename VARCHAR, sequenceowner VARCHAR",
    "pg_event_trigger": "oid BIGINT, evtname VARCHAR, evtevent VARCHAR, evtowner BIGINT, evtfoid BIGINT, "
                        "evtenabled VARCHAR, evttags VARCHAR[]",
    "pg_language": "oid BIGINT, lanname VARCHAR, lanowner BIGINT, lanispl BOOLEAN, lanpltrusted BOOLEAN",
    "pg_opclass": "oid BIGINT, opcmethod BIGINT, opcname VARCHAR, opcnamespace BIGINT, opcowner BIGINT, "
                  "opcfamily BIGINT, opcintype BIGINT, opcdefault BOOLEAN, opckeytype BIGINT",
    "pg_operator": "oid BIGINT, oprname VARCHAR, oprnamespace BIGINT, oprowner BIGINT, oprkind VARCHAR, "
                   "oprleft BIGINT, oprright BIGINT, oprresult BIGINT",
    "pg_cast": "oid BIGINT, castsource BIGINT, casttarget BIGINT, castfunc BIGINT, castcontext VARCHAR, "
               "castmethod VARCHAR",
    "pg_conversion": "oid BIGINT, conname VARCHAR, connamespace BIGINT",
    "pg_aggregate": "aggfnoid BIGINT, aggkind VARCHAR, aggnumdirectargs SMALLINT",
    "pg_stat_activity": "datid BIGINT, datname VARCHAR, pid INTEGER, usesysid BIGINT, usename VARCHAR, "
                        "application_name VARCHAR, client_addr VARCHAR, backend_start TIMESTAMPTZ, "
                        "state VARCHAR, query VARCHAR",
    "pg_locks": "locktype VARCHAR, database BIGINT, relation BIGINT, pid INTEGER, mode VARCHAR, granted BOOLEAN",
    "pg_prepared_xacts": "transaction BIGINT, gid VARCHAR, prepared TIMESTAMPTZ, owner VARCHAR, database VARCHAR",
    "pg_timezone_names": "name VARCHAR, abbrev VARCHAR, utc_offset INTERVAL, is_dst BOOLEAN",
    "pg_settings": "name VARCHAR, setting VARCHAR, unit VARCHAR, category VARCHAR, short_desc VARCHAR, "
                   "extra_desc VARCHAR, context VARCHAR, vartype VARCHAR, source VARCHAR, min_val VARCHAR, "
                   "max_val VARCHAR, enumvals VARCHAR[], boot_val VARCHAR, reset_val VARCHAR, sourcefile VARCHAR, "
                   "sourceline INTEGER, pending_restart BOOLEAN",
    "pg_available_extensions": "name VARCHAR, default_version VARCHAR, installed_version VARCHAR, comment VARCHAR",
    # the session's open cursors (registered per query, like pg_settings: psycopg asks before closing a named
    # cursor whose DECLARE failed)
    "pg_cursors": "name VARCHAR, statement VARCHAR, is_holdable BOOLEAN, is_binary BOOLEAN, is_scrollable BOOLEAN, "
                  "creation_time TIMESTAMPTZ",
}

INFO_TABLES: dict[str, str] = {
    "schemata": "catalog_name VARCHAR, schema_name VARCHAR, schema_owner VARCHAR, "
                "default_character_set_catalog VARCHAR, default_character_set_schema VARCHAR, "
                "default_character_set_name VARCHAR, sql_path VARCHAR",
    "tables": "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, table_type VARCHAR, "
              "self_referencing_column_name VARCHAR, reference_generation VARCHAR, user_defined_type_catalog VARCHAR, "
              "user_defined_type_schema VARCHAR, user_defined_type_name VARCHAR, is_insertable_into VARCHAR, "
              "is_typed VARCHAR, commit_action VARCHAR",
    "views": "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, view_definition VARCHAR, "
             "check_option VARCHAR, is_updatable VARCHAR, is_insertable_into VARCHAR",
    "columns": "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, column_name VARCHAR, "
               "ordinal_position INTEGER, column_default VARCHAR, is_nullable VARCHAR, data_type VARCHAR, "
               "character_maximum_length INTEGER, character_octet_length INTEGER, numeric_precision INTEGER, "
               "numeric_precision_radix INTEGER, numeric_scale INTEGER, datetime_precision INTEGER, "
               "interval_type VARCHAR, interval_precision INTEGER, udt_catalog VARCHAR, udt_schema VARCHAR, "
               "udt_name VARCHAR, is_identity VARCHAR, is_generated VARCHAR, generation_expression VARCHAR, "
               "is_updatable VARCHAR",
    "table_constraints": "constraint_catalog VARCHAR, constraint_schema VARCHAR, constraint_name VARCHAR, "
                         "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, constraint_type VARCHAR, "
                         "is_deferrable VARCHAR, initially_deferred VARCHAR, enforced VARCHAR",
    "key_column_usage": "constraint_catalog VARCHAR, constraint_schema VARCHAR, constraint_name VARCHAR, "
                        "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, column_name VARCHAR, "
                        "ordinal_position INTEGER, position_in_unique_constraint INTEGER",
    "referential_constraints": "constraint_catalog VARCHAR, constraint_schema VARCHAR, constraint_name VARCHAR, "
                               "unique_constraint_catalog VARCHAR, unique_constraint_schema VARCHAR, "
                               "unique_constraint_name VARCHAR, match_option VARCHAR, update_rule VARCHAR, "
                               "delete_rule VARCHAR",
    "routines": "specific_catalog VARCHAR, specific_schema VARCHAR, specific_name VARCHAR, routine_catalog VARCHAR, "
                "routine_schema VARCHAR, routine_name VARCHAR, routine_type VARCHAR, data_type VARCHAR",
    "character_sets": "character_set_catalog VARCHAR, character_set_schema VARCHAR, character_set_name VARCHAR, "
                      "character_repertoire VARCHAR, form_of_use VARCHAR, default_collate_catalog VARCHAR, "
                      "default_collate_schema VARCHAR, default_collate_name VARCHAR",
    "enabled_roles": "role_name VARCHAR",
    "applicable_roles": "grantee VARCHAR, role_name VARCHAR, is_grantable VARCHAR",
    "table_privileges": "grantor VARCHAR, grantee VARCHAR, table_catalog VARCHAR, table_schema VARCHAR, "
                        "table_name VARCHAR, privilege_type VARCHAR, is_grantable VARCHAR, with_hierarchy VARCHAR",
    "sequences": "sequence_catalog VARCHAR, sequence_schema VARCHAR, sequence_name VARCHAR, data_type VARCHAR",
}

_FALSE_FUNCS = {"pg_is_in_recovery", "pg_is_other_temp_schema", "pg_relation_is_publishable"}
_TRUE_FUNCS = {"pg_type_is_visible", "pg_function_is_visible", "pg_operator_is_visible", "pg_opclass_is_visible",
               "pg_collation_is_visible", "pg_conversion_is_visible", "pg_ts_config_is_visible",
               "pg_ts_dict_is_visible", "pg_ts_parser_is_visible", "pg_ts_template_is_visible",
               "pg_opfamily_is_visible", "pg_has_role", "has_function_privilege", "has_sequence_privilege",
               "has_type_privilege",
               "has_language_privilege", "has_tablespace_privilege", "has_foreign_data_wrapper_privilege",
               "has_server_privilege", "pg_is_in_backup"}
_NULL_FUNCS = {"pg_get_partkeydef", "pg_get_viewdef", "pg_get_triggerdef", "pg_get_ruledef",
               "pg_get_serial_sequence", "shobj_description", "pg_get_statisticsobjdef_columns",
               "pg_get_function_arguments", "pg_get_function_result", "pg_get_function_identity_arguments",
               "pg_get_functiondef", "pg_tablespace_location", "pg_get_partition_constraintdef",
               "pg_describe_object", "pg_get_function_sqlbody", "pg_identify_object", "inet_client_addr",
               "inet_server_addr", "pg_stat_get_numscans"}
_ZERO_FUNCS = {"pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
               "pg_database_size", "txid_current", "pg_current_xact_id", "pg_tablespace_size",
               "inet_client_port", "inet_server_port", "pg_relation_filenode", "pg_stat_get_live_tuples"}
MACROS = {
    "format_type": 2, "pg_get_userbyid": 1, "pg_table_is_visible": 2, "obj_description": 2, "col_description": 2,
    "pg_get_expr": 3, "to_regtype": 1, "to_regclass": 1, "to_regnamespace": 1, "regclass_oid": 1,
    "regclass_name": 1, "regtype_oid": 1, "regtype_name": 1, "regnamespace_name": 1, "regproc_name": 1, "regproc_oid": 1,
    "pg_get_constraintdef": 2, "pg_encoding_to_char": 1, "pg_char_to_encoding": 1, "quote_ident": 1,
    "array_lower": 2, "array_upper": 2, "array_length": 2, "pg_size_pretty": 1, "pg_get_indexdef": 3,
    # privileges: the governance's decisions (a table or column is listed only if the principal may read it)
    "has_table_privilege": 3, "has_any_column_privilege": 3, "has_column_privilege": 4, "has_schema_privilege": 3,
    "has_database_privilege": 3,
}
_SCALAR_REWRITES = {"current_schemas", "current_setting", "set_config", "pg_backend_pid", "current_database",
                    "current_schema", "version", "pg_postmaster_start_time", "pg_conf_load_time",
                    "current_user", "session_user", "current_role", "user", "current_catalog",
                    "pg_get_keywords", "pg_typeof", "generate_subscripts", "json_build_object",
                    "jsonb_build_object"}
CATALOG_FUNCTIONS = set(MACROS) | _SCALAR_REWRITES | _TRUE_FUNCS | _FALSE_FUNCS | _NULL_FUNCS | _ZERO_FUNCS
CATALOG_FUNCTIONS -= {"quote_ident", "array_lower", "array_upper", "array_length", "pg_size_pretty"}
# int2vector and oidvector columns: PostgreSQL indexes them from 0, and sends them as their own types
_VECTORS = {"indkey": pgt.INT2VECTOR, "indoption": pgt.INT2VECTOR, "indclass": pgt.OIDVECTOR,
            "indcollation": pgt.OIDVECTOR, "proargtypes": pgt.OIDVECTOR}
_REG_TYPES = {"regclass", "regtype", "regproc", "regprocedure", "regnamespace", "regrole", "regoper",
              "regconfig"}


class UnknownSetting(UnknownObject):
    sqlstate = "42704"  # PostgreSQL's undefined_object (SHOW answers the same)


def _func_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, (exp.CurrentUser, exp.SessionUser)):
        return "current_user"
    if isinstance(node, exp.CurrentSchema):
        return "current_schema"
    if isinstance(node, exp.CurrentCatalog):
        return "current_database"
    if isinstance(node, exp.CurrentVersion):
        return "version"
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return None


def _cast_target(cast: exp.Cast) -> str:
    return cast.to.sql("postgres").lower().replace("pg_catalog.", "").replace('"', "")


def is_catalog_query(expression: exp.Expression, mesh) -> bool:
    """Does this query read the PostgreSQL catalog (tables, catalog functions, reg* casts)?"""
    for node in expression.walk():
        if isinstance(node, exp.Table):
            db, name = node.text("db").lower(), node.name.lower()
            if isinstance(node.this, exp.Anonymous):
                if str(node.this.this).lower() in ("pg_get_keywords", "generate_subscripts", "pg_show_all_settings",
                                                   "_pg_expandarray"):
                    return True
                continue
            if db in ("pg_catalog", "information_schema"):
                return True
            if not db and (name in PG_TABLES or name.startswith("pg_")):
                return True
        elif isinstance(node, exp.Cast):
            if _cast_target(node) in _REG_TYPES:
                return True
        elif isinstance(node, exp.Column) and not node.table and node.name.lower() in (
                "current_user", "session_user", "user", "current_role", "current_schema", "current_catalog"):
            if not isinstance(node.this, exp.Identifier) or not node.this.quoted:
                return True
        elif isinstance(node, (exp.Func,)):
            name = _func_name(node)
            if name in CATALOG_FUNCTIONS:
                return True
    return False


# -- building the catalog of a principal ---------------------------------------------------------------------


def _rows_to_table(spec: str, rows: list[dict]) -> pa.Table:
    names = [c.strip().split(" ", 1)[0] for c in _split_spec(spec)]
    return pa.table({n: [r.get(n) for r in rows] for n in names}) if rows else None  # type: ignore[return-value]


def _split_spec(spec: str) -> list[str]:
    return [c.strip() for c in spec.split(",") if c.strip()]


class PrincipalCatalog:
    """The emulated catalog of one principal: a scratch database of the engine (``engine/scratch.py``),
    locked down once built. ``relations`` and ``macros`` are what its queries may read and call."""

    def __init__(self, platform, principal, database: str, purpose: str | None = None):
        self.scratch = ScratchDatabase()
        self.user = principal.name
        self.database = database
        self.purpose = purpose
        self.relations: set[tuple[str, str]] = {("temp", "pg_settings_session"),  # registered per query
                                                ("temp", "pg_cursors_session")}
        # every relation that exists, listed or not (a denied dataset exists: has_table_privilege is false
        # for it, and 42P01 only for a name that names nothing, like PostgreSQL)
        self.existing: set[tuple[str, str]] = {("pg_catalog", n) for n in PG_TABLES} | \
            {("information_schema", n) for n in INFO_TABLES}
        rows = self._collect(platform, principal, database)
        self.schemas = {r["nspname"] for r in rows["pg_namespace"]}
        self.schema_oids = {r["nspname"]: r["oid"] for r in rows["pg_namespace"]}
        self.scratch.create_schema("pgc")
        self.scratch.create_schema("pgi")
        for name, spec in PG_TABLES.items():
            self._create("pgc", name, spec, rows.get(name, []))
        for name, spec in INFO_TABLES.items():
            self._create("pgi", name, spec, rows.get("info_" + name, []))
        self._create("pgc", "_types", "oid BIGINT, display VARCHAR",
                     [{"oid": t.oid, "display": t.display} for t in pgt.TYPES.values()])
        self._create("pgc", "_indexdefs", "oid BIGINT, def VARCHAR", rows["_indexdefs"])
        self._create("pgc", "_sysclasses", "name VARCHAR, oid BIGINT",
                     [{"name": n, "oid": SYSTEM_CLASSES.get(n, 12000 + i)} for i, n in enumerate(PG_TABLES)])
        self._create("pgc", "_relations", "oid BIGINT, readable BOOLEAN",
                     [{"oid": r["oid"], "readable": r["relkind"] in ("r", "v", "m", "p", "f")} for r in rows["pg_class"]]
                     + [{"oid": SYSTEM_CLASSES.get(n, 12000 + i), "readable": True} for i, n in enumerate(PG_TABLES)])
        self._create("pgc", "keywords", "word VARCHAR, catcode VARCHAR, barelabel BOOLEAN, catdesc VARCHAR, "
                                        "baredesc VARCHAR", _keywords())
        self.macros = self._macros()
        self.scratch.lock()
        self.relations = frozenset(self.relations)

    def _create(self, schema: str, name: str, spec: str, rows: list[dict]) -> None:
        self.scratch.create_table(schema, name, spec, _rows_to_table(spec, rows))
        self.relations.add((schema, name.lower()))

    def _macros(self) -> frozenset[str]:
        user = self.user.replace("'", "''")
        stmts = [
            "CREATE MACRO pgc.format_type(t, m) AS CASE WHEN t IS NULL THEN NULL "
            "WHEN t = 1700 AND m > 4 THEN 'numeric(' || ((m - 4) >> 16) || ',' || ((m - 4) & 65535) || ')' "
            "WHEN t = 1043 AND m > 4 THEN 'character varying(' || (m - 4) || ')' "
            "WHEN t = 1042 AND m > 4 THEN 'character(' || (m - 4) || ')' "
            "ELSE coalesce((SELECT first(_m.display) FROM pgc._types _m WHERE _m.oid = t), '???') END",
            f"CREATE MACRO pgc.pg_get_userbyid(r) AS CASE WHEN r IS NULL THEN NULL ELSE '{user}' END",
            "CREATE MACRO pgc.pg_table_is_visible(c, path) AS coalesce((SELECT first(list_contains(path, "
            "_m.relnamespace)) FROM pgc.pg_class _m WHERE _m.oid = c), false)",
            "CREATE MACRO pgc.obj_description(o, cat) AS (SELECT first(_m.description) FROM pgc.pg_description _m "
            "WHERE _m.objoid = o AND _m.objsubid = 0)",
            "CREATE MACRO pgc.col_description(o, n) AS (SELECT first(_m.description) FROM pgc.pg_description _m "
            "WHERE _m.objoid = o AND _m.objsubid = n)",
            "CREATE MACRO pgc.pg_get_expr(e, r, p) AS e",
            "CREATE MACRO pgc._pg_expandarray(a) AS list_transform(range(1, len(a) + 1), _i -> {'x': a[_i], 'n': _i})",
            "CREATE MACRO pgc.to_regtype(n) AS (SELECT first(_t.oid) FROM pgc.pg_type _t JOIN pgc._types _d "
            "ON _d.oid = _t.oid WHERE _t.typname = lower(n) OR _d.display = lower(n) "
            "OR 'pg_catalog.' || _t.typname = lower(n))",
            "CREATE MACRO pgc.regtype_oid(n) AS coalesce(TRY_CAST(n AS BIGINT), pgc.to_regtype(CAST(n AS VARCHAR)))",
            "CREATE MACRO pgc.regtype_name(o) AS (SELECT first(_m.display) FROM pgc._types _m WHERE _m.oid = o)",
            "CREATE MACRO pgc.to_regclass(n) AS coalesce((SELECT first(_c.oid) FROM pgc.pg_class _c "
            "JOIN pgc.pg_namespace _s ON _s.oid = _c.relnamespace WHERE (CASE WHEN contains(n, '.') THEN "
            "_s.nspname = lower(trim(split_part(n, '.', 1), '\"')) AND _c.relname = lower(trim(split_part(n, '.', 2), '\"')) "
            "ELSE _c.relname = lower(trim(n, '\"')) AND _s.oid IN (11, 2200) END)), "
            "(SELECT first(_y.oid) FROM pgc._sysclasses _y WHERE _y.name = lower(replace(n, 'pg_catalog.', ''))))",
            "CREATE MACRO pgc.regclass_oid(n) AS coalesce(TRY_CAST(n AS BIGINT), pgc.to_regclass(CAST(n AS VARCHAR)))",
            "CREATE MACRO pgc.regclass_name(o) AS coalesce((SELECT first(CASE WHEN _c.relnamespace IN (11, 2200) "
            "THEN _c.relname ELSE _s.nspname || '.' || _c.relname END) FROM pgc.pg_class _c JOIN pgc.pg_namespace _s "
            "ON _s.oid = _c.relnamespace WHERE _c.oid = o), CAST(o AS VARCHAR))",
            "CREATE MACRO pgc.to_regnamespace(n) AS (SELECT first(_m.oid) FROM pgc.pg_namespace _m WHERE _m.nspname = n)",
            "CREATE MACRO pgc.regnamespace_name(o) AS (SELECT first(_m.nspname) FROM pgc.pg_namespace _m WHERE _m.oid = o)",
            "CREATE MACRO pgc.regproc_oid(n) AS coalesce((SELECT first(_m.oid) FROM pgc.pg_proc _m WHERE _m.proname = "
            "lower(trim(replace(n, 'pg_catalog.', ''), '\"'))), 0)",
            "CREATE MACRO pgc.regproc_name(o) AS coalesce((SELECT first(_m.proname) FROM pgc.pg_proc _m WHERE _m.oid = o), "
            "CASE WHEN o = 0 THEN '-' ELSE CAST(o AS VARCHAR) END)",
            "CREATE MACRO pgc.pg_get_constraintdef(o, p) AS (SELECT first(_m.conbin) FROM pgc.pg_constraint _m WHERE _m.oid = o)",
            # column c > 0: the name of the index's c-th column (pgjdbc's getIndexInfo), 0: the whole definition
            "CREATE MACRO pgc.pg_get_indexdef(o, c, p) AS CASE WHEN coalesce(c, 0) = 0 THEN (SELECT first(_m.def) "
            "FROM pgc._indexdefs _m WHERE _m.oid = o) ELSE (SELECT first(_a.attname) FROM pgc.pg_index _i "
            "JOIN pgc.pg_attribute _a ON _a.attrelid = _i.indrelid AND _a.attnum = _i.indkey[c] "
            "WHERE _i.indexrelid = o) END",
            "CREATE MACRO pgc.pg_encoding_to_char(e) AS 'UTF8'",
            "CREATE MACRO pgc.pg_char_to_encoding(e) AS 6",
            "CREATE MACRO pgc.quote_ident(s) AS CASE WHEN regexp_full_match(s, '[a-z_][a-z0-9_]*') THEN s "
            "ELSE '\"' || replace(s, '\"', '\"\"') || '\"' END",
            "CREATE MACRO pgc.array_lower(a, d) AS CASE WHEN len(a) > 0 THEN 1 END",
            "CREATE MACRO pgc.array_upper(a, d) AS CASE WHEN len(a) > 0 THEN len(a) END",
            "CREATE MACRO pgc.array_length(a, d) AS CASE WHEN len(a) > 0 THEN len(a) END",
            "CREATE MACRO pgc.pg_size_pretty(s) AS format_bytes(CAST(s AS BIGINT))",
            # has_x_privilege([user,] object, privilege): the rewrite pads the short form with NULL; another
            # user's privileges are not this principal's to know (NULL). Read only: SELECT / USAGE / CONNECT.
            "CREATE MACRO pgc._privilege(p, wanted) AS "
            "regexp_matches(upper(CAST(p AS VARCHAR)), '(^|,) *' || wanted || ' *(,|$)')",
            f"CREATE MACRO pgc._for_user(u) AS CAST(u AS VARCHAR) = '{user}'",
            # an oid that names no relation: NULL (PostgreSQL's answer); a name that names none is 42P01 (rewrite)
            "CREATE MACRO pgc._table_privilege(t, p) AS CASE WHEN EXISTS (SELECT 1 FROM pgc._relations _k "
            "WHERE _k.oid = pgc.regclass_oid(t) AND _k.readable) THEN coalesce(pgc._privilege(p, 'SELECT'), false) "
            "WHEN TRY_CAST(t AS BIGINT) IS NULL THEN false END",
            "CREATE MACRO pgc.has_table_privilege(a, b, c) AS CASE WHEN c IS NULL THEN pgc._table_privilege(a, b) "
            "WHEN pgc._for_user(a) THEN pgc._table_privilege(b, c) END",
            "CREATE MACRO pgc.has_any_column_privilege(a, b, c) AS CASE WHEN c IS NULL THEN "
            "pgc._table_privilege(a, b) WHEN pgc._for_user(a) THEN pgc._table_privilege(b, c) END",
            "CREATE MACRO pgc._column_privilege(t, col, p) AS coalesce(pgc._privilege(p, 'SELECT') AND EXISTS ("
            "SELECT 1 FROM pgc.pg_attribute _a WHERE _a.attrelid = pgc.regclass_oid(t) AND (lower(_a.attname) = "
            "lower(CAST(col AS VARCHAR)) OR CAST(_a.attnum AS VARCHAR) = CAST(col AS VARCHAR))), false)",
            "CREATE MACRO pgc.has_column_privilege(a, b, c, d) AS CASE WHEN d IS NULL THEN "
            "pgc._column_privilege(a, b, c) WHEN pgc._for_user(a) THEN pgc._column_privilege(b, c, d) END",
            "CREATE MACRO pgc._schema_privilege(n, p) AS coalesce(pgc._privilege(p, 'USAGE') AND ("
            "TRY_CAST(n AS BIGINT) IN (SELECT _s.oid FROM pgc.pg_namespace _s) OR lower(CAST(n AS VARCHAR)) IN "
            "(SELECT _s.nspname FROM pgc.pg_namespace _s)), false)",
            "CREATE MACRO pgc.has_schema_privilege(a, b, c) AS CASE WHEN c IS NULL THEN pgc._schema_privilege(a, b) "
            "WHEN pgc._for_user(a) THEN pgc._schema_privilege(b, c) END",
            "CREATE MACRO pgc._database_privilege(n, p) AS coalesce(pgc._privilege(p, 'CONNECT') AND ("
            "TRY_CAST(n AS BIGINT) IN (SELECT _d.oid FROM pgc.pg_database _d) OR CAST(n AS VARCHAR) IN "
            "(SELECT _d.datname FROM pgc.pg_database _d)), false)",
            "CREATE MACRO pgc.has_database_privilege(a, b, c) AS CASE WHEN c IS NULL THEN "
            "pgc._database_privilege(a, b) WHEN pgc._for_user(a) THEN pgc._database_privilege(b, c) END",
        ]
        names = set()
        for statement in stmts:
            self.scratch.create_macro(statement)
            names.add(re.match(r"CREATE MACRO pgc\.(\w+)\(", statement).group(1))
        assert names - set(MACROS) == {n for n in names if n.startswith("_")} and set(MACROS) <= names, \
            "every macro the rewrite calls is created (the others are helpers named _x)"
        return frozenset(names)

    # -- rows --------------------------------------------------------------------------------------------

    def readable(self, platform, principal, ds) -> bool:
        """The decision a query of ``ds`` gets for this principal and the session's purpose (the one rule
        of what a catalog lists: ``governance/listing.py``)."""
        return listing.readable(platform, principal, ds, self.purpose)

    def _system_tables(self, platform) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """(name, description, [(column, DuckDB type)]) of the tables of the ``system`` schema."""
        out = []
        for table in listing.system_tables(platform):
            self.existing.add(("system", table.name))
            out.append((table.name, table.description, [(c.name, c.data_type) for c in table.columns]))
        return out

    def _collect(self, platform, principal, database: str) -> dict[str, list[dict]]:
        mesh = platform.mesh
        rows: dict[str, list[dict]] = {k: [] for k in PG_TABLES}
        rows["_indexdefs"] = []
        quanta = sorted(mesh.quanta.values(), key=lambda q: q.name.lower())
        datasets = sorted(mesh.datasets(), key=lambda d: (d.quantum.lower(), d.name.lower()))
        schema_oid = {q.name.lower(): FIRST_SCHEMA + i for i, q in enumerate(quanta)}
        table_oid = {(d.quantum.lower(), d.name.lower()): FIRST_TABLE + i for i, d in enumerate(datasets)}
        for ds in datasets:
            self.existing.add((ds.quantum.lower(), ds.name.lower()))
        # what it lists: the datasets a query may read, their columns minus the denied ones (listing.py)
        visible = [(item.dataset, list(item.columns))
                   for item in listing.visible_datasets(platform, principal, self.purpose)]
        visible_quanta = {ds.quantum.lower() for ds, _ in visible}
        # namespaces
        nsp = [{"oid": PG_CATALOG, "nspname": "pg_catalog", "nspowner": OWNER},
               {"oid": PUBLIC, "nspname": "public", "nspowner": OWNER},
               {"oid": INFORMATION_SCHEMA, "nspname": "information_schema", "nspowner": OWNER}]
        system = self._system_tables(platform)
        if system:  # the open dictionary: every principal may read it (its rows are filtered per principal)
            nsp.append({"oid": SYSTEM_SCHEMA, "nspname": "system", "nspowner": OWNER})
            rows["pg_description"].append({"objoid": SYSTEM_SCHEMA, "classoid": PG_NAMESPACE_OID, "objsubid": 0,
                                           "description": "The mesh's dictionary: datasets, columns, grants, "
                                                          "lineage, the audit log (Quanta)"})
        for q in quanta:
            if q.name.lower() in visible_quanta:
                nsp.append({"oid": schema_oid[q.name.lower()], "nspname": q.name.lower(), "nspowner": OWNER})
                if q.description:
                    rows["pg_description"].append({"objoid": schema_oid[q.name.lower()], "classoid": PG_NAMESPACE_OID,
                                                   "objsubid": 0, "description": _text(q.description)})
        rows["pg_namespace"] = nsp
        schema_oid["system"] = SYSTEM_SCHEMA
        for i, (name, description, columns) in enumerate(system):
            table_oid[("system", name)] = FIRST_SYSTEM_TABLE + i
            visible.append((_Relation("system", name, description),
                            [_Attribute(c, t, n) for n, (c, t) in enumerate(columns, start=1)]))
        info_schemata = [{"catalog_name": database, "schema_name": n["nspname"], "schema_owner": self.user}
                         for n in nsp]
        info_tables, info_columns, info_constraints, info_keys = [], [], [], []
        for i, (ds, columns) in enumerate(visible):
            q, oid = ds.quantum.lower(), table_oid[(ds.quantum.lower(), ds.name.lower())]
            rows["pg_class"].append({
                "oid": oid, "relname": ds.name.lower(), "relnamespace": schema_oid[q], "reltype": oid + 20000,
                "reloftype": 0, "relowner": OWNER, "relam": 2, "relfilenode": oid, "reltablespace": 0,
                "relpages": 0, "reltuples": -1.0, "relallvisible": 0, "reltoastrelid": 0, "relhasindex": False,
                "relisshared": False, "relpersistence": "p", "relkind": "v" if q == "system" else "r",
                "relnatts": len(columns),
                "relchecks": 0, "relhasrules": False, "relhastriggers": False, "relhassubclass": False,
                "relrowsecurity": False, "relforcerowsecurity": False, "relispopulated": True,
                "relreplident": "d", "relispartition": False, "relrewrite": 0, "relfrozenxid": 0, "relminmxid": 0,
                "relacl": [f"{_acl_name(self.user)}=r/{_acl_name(self.user)}"]})  # read only (pgjdbc's getTablePrivileges, psql's \dp)
            rows["pg_type"].append(_type_row(oid + 20000, ds.name.lower(), schema_oid[q], -1, "c", "C", relid=oid))
            if q == "system":
                rows["pg_views"].append({"schemaname": q, "viewname": ds.name.lower(), "viewowner": self.user})
            else:
                rows["pg_tables"].append({"schemaname": q, "tablename": ds.name.lower(), "tableowner": self.user,
                                          "hasindexes": False, "hasrules": False, "hastriggers": False,
                                          "rowsecurity": False})
            rows["pg_stat_user_tables"].append({"relid": oid, "schemaname": q, "relname": ds.name.lower()})
            if ds.description:
                rows["pg_description"].append({"objoid": oid, "classoid": PG_CLASS_OID, "objsubid": 0,
                                               "description": _text(ds.description)})
            info_tables.append({"table_catalog": database, "table_schema": q, "table_name": ds.name.lower(),
                                "table_type": "VIEW" if q == "system" else "BASE TABLE",
                                "is_insertable_into": "NO", "is_typed": "NO"})
            pk = []
            for n, c in enumerate(columns, start=1):
                type_oid, typmod = pgt.duckdb_type_oid(c.data_type)
                t = pgt.TYPES.get(type_oid) or pgt.TYPES[pgt.TEXT]
                rows["pg_attribute"].append({
                    "attrelid": oid, "attname": c.name, "atttypid": type_oid, "attstattarget": -1,
                    "attlen": t.size, "attnum": n, "attndims": 1 if t.category == "A" else 0, "attcacheoff": -1,
                    "atttypmod": typmod, "attbyval": t.size in (1, 2, 4, 8), "attalign": "i", "attstorage": "p",
                    "attcompression": "", "attnotnull": bool(c.required or c.primary_key), "atthasdef": False,
                    "atthasmissing": False, "attidentity": "", "attgenerated": "", "attisdropped": False,
                    "attislocal": True, "attinhcount": 0, "attcollation": 100 if t.category == "S" else 0})
                if c.description:
                    rows["pg_description"].append({"objoid": oid, "classoid": PG_CLASS_OID, "objsubid": n,
                                                   "description": _text(c.description)})
                if c.primary_key:
                    pk.append((_pk_position(c), n))
                precision = scale = None
                if type_oid == pgt.NUMERIC and typmod > 4:
                    precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
                elif type_oid in (pgt.INT2, pgt.INT4, pgt.INT8):
                    precision, scale = {pgt.INT2: 16, pgt.INT4: 32, pgt.INT8: 64}[type_oid], 0
                elif type_oid in (pgt.FLOAT4, pgt.FLOAT8):
                    precision = 24 if type_oid == pgt.FLOAT4 else 53
                info_columns.append({
                    "table_catalog": database, "table_schema": q, "table_name": ds.name.lower(),
                    "column_name": c.name, "ordinal_position": n,
                    "is_nullable": "NO" if (c.required or c.primary_key) else "YES",
                    "data_type": t.display if t.category != "A" else "ARRAY",
                    "numeric_precision": precision, "numeric_scale": scale,
                    "numeric_precision_radix": 2 if type_oid in (pgt.INT2, pgt.INT4, pgt.INT8, pgt.FLOAT4,
                                                                 pgt.FLOAT8) else (10 if precision else None),
                    "udt_catalog": database, "udt_schema": "pg_catalog", "udt_name": t.name,
                    "is_identity": "NO", "is_generated": "NEVER", "is_updatable": "NO"})
            pk = [n for _, n in sorted(pk)]  # in the contract's primaryKeyPosition order
            if pk:  # the contract's primary key: a constraint and its (virtual) unique index
                con_oid, index_oid = oid + 60000, oid + 80000
                name = f"{ds.name.lower()}_pkey"
                keys = ", ".join(columns[k - 1].name for k in pk)
                rows["pg_constraint"].append({
                    "oid": con_oid, "conname": name, "connamespace": schema_oid[q], "contype": "p",
                    "condeferrable": False, "condeferred": False, "convalidated": True, "conrelid": oid,
                    "contypid": 0, "conindid": index_oid, "conparentid": 0, "confrelid": 0, "conislocal": True,
                    "coninhcount": 0, "connoinherit": True, "conkey": pk, "conbin": f"PRIMARY KEY ({keys})"})
                rows["pg_index"].append({
                    "indexrelid": index_oid, "indrelid": oid, "indnatts": len(pk), "indnkeyatts": len(pk),
                    "indisunique": True, "indnullsnotdistinct": False, "indisprimary": True,
                    "indisexclusion": False, "indimmediate": True, "indisclustered": False, "indisvalid": True,
                    "indcheckxmin": False, "indisready": True, "indislive": True, "indisreplident": False,
                    "indkey": pk, "indcollation": [0] * len(pk), "indclass": [0] * len(pk),
                    "indoption": [0] * len(pk)})
                table_row = next(r for r in rows["pg_class"] if r["oid"] == oid)
                table_row["relhasindex"] = True
                rows["pg_class"].append(dict(table_row, relhasindex=False, oid=index_oid, relname=name, reltype=0, relam=403,
                                             relkind="i", relnatts=len(pk), relfilenode=index_oid))
                attributes = rows["pg_attribute"][-len(columns):]  # this table's, appended above
                rows["pg_attribute"].extend(dict(attributes[k - 1], attrelid=index_oid, attnum=i)  # the index's columns
                                            for i, k in enumerate(pk, start=1))  # (psqlODBC's SQLPrimaryKeys)
                rows["_indexdefs"].append({"oid": index_oid, "def": f"CREATE UNIQUE INDEX {name} ON {q}."
                                                                   f"{ds.name.lower()} USING btree ({keys})"})
                rows["pg_indexes"].append({"schemaname": q, "tablename": ds.name.lower(), "indexname": name,
                                           "indexdef": rows["_indexdefs"][-1]["def"]})
                where = {"constraint_catalog": database, "constraint_schema": q, "constraint_name": name,
                         "table_catalog": database, "table_schema": q, "table_name": ds.name.lower()}
                info_constraints.append(dict(where, constraint_type="PRIMARY KEY", is_deferrable="NO",
                                             initially_deferred="NO", enforced="YES"))
                info_keys.extend(dict(where, column_name=columns[k - 1].name, ordinal_position=i)
                                 for i, k in enumerate(pk, start=1))
        rows["info_schemata"] = info_schemata
        rows["info_table_constraints"] = info_constraints
        rows["info_key_column_usage"] = info_keys
        rows["info_tables"] = info_tables
        rows["info_columns"] = info_columns
        rows["info_enabled_roles"] = [{"role_name": self.user}]
        rows["info_character_sets"] = [{"character_set_name": "UTF8", "character_repertoire": "UCS",
                                        "form_of_use": "UTF8"}]
        # types, roles, database, access methods
        for t in pgt.TYPES.values():
            elem = pgt.ELEMENT_OF.get(t.oid, 0)
            rows["pg_type"].append(_type_row(t.oid, t.name, PG_CATALOG, t.size, "p" if t.category == "P" else "b",
                                             t.category, elem=elem, array=pgt.ARRAY_OF.get(t.oid, 0)))
        _io_functions(rows)
        role = {"oid": OWNER, "rolname": self.user, "rolsuper": False, "rolinherit": True, "rolcreaterole": False,
                "rolcreatedb": False, "rolcanlogin": True, "rolreplication": False, "rolconnlimit": -1,
                "rolpassword": "********", "rolbypassrls": False}
        rows["pg_roles"] = [role]
        rows["pg_authid"] = [dict(role, rolpassword=None)]
        rows["pg_user"] = [{"usename": self.user, "usesysid": OWNER, "usecreatedb": False, "usesuper": False,
                            "userepl": False, "usebypassrls": False, "passwd": "********"}]
        # one database: the mesh (an alias a client connected with is the same database; session.py)
        rows["pg_database"] = [{"oid": 16383, "datname": mesh.name, "datdba": OWNER, "encoding": 6,
                                "datlocprovider": "c", "datistemplate": False, "datallowconn": True,
                                "datconnlimit": -1, "dattablespace": 1663, "datcollate": "C", "datctype": "C"}]
        if mesh.description:
            rows["pg_shdescription"] = [{"objoid": 16383, "classoid": PG_DATABASE_OID,
                                         "description": _text(mesh.description)}]
        rows["pg_am"] = [{"oid": 2, "amname": "heap", "amhandler": 3, "amtype": "t"},
                         {"oid": 403, "amname": "btree", "amhandler": 330, "amtype": "i"}]
        rows["pg_tablespace"] = [{"oid": 1663, "spcname": "pg_default", "spcowner": OWNER}]
        rows["pg_collation"] = [{"oid": 100, "collname": "default", "collnamespace": PG_CATALOG, "collowner": OWNER,
                                 "collprovider": "d", "collisdeterministic": True, "collencoding": -1},
                                {"oid": 950, "collname": "C", "collnamespace": PG_CATALOG, "collowner": OWNER,
                                 "collprovider": "c", "collisdeterministic": True, "collencoding": -1}]
        rows["pg_language"] = [{"oid": 12, "lanname": "internal", "lanowner": OWNER, "lanispl": False,
                                "lanpltrusted": False},
                               {"oid": 14, "lanname": "sql", "lanowner": OWNER, "lanispl": False,
                                "lanpltrusted": True}]
        return rows


@dataclass(frozen=True)
class _Relation:
    """A table of the ``system`` schema, described like a dataset."""

    quantum: str
    name: str
    description: str | None = None


@dataclass(frozen=True)
class _Attribute:
    """A column of a ``system`` table, described like a contract's column."""

    name: str
    data_type: str
    ordinal: int
    description: str | None = None
    required: bool = False
    primary_key: bool = False


def _pk_position(column) -> tuple[int, int]:
    raw = getattr(column, "raw", None) or {}
    position = raw.get("primaryKeyPosition")
    return (int(position) if isinstance(position, int) and position > 0 else 1 << 30, column.ordinal)


def _oid_schema(schema: pa.Schema, expression: exp.Expression | None = None) -> pa.Schema:
    """The result's columns as PostgreSQL names and types them: named by FigureColname (``count(*)`` is
    count, not DuckDB's count_star()); lists of integers are oid[] (what PostgreSQL returns; drivers have
    their codec), but a catalog vector (pg_index.indkey, pg_proc.proargtypes..., selected as it is, aliased or
    not) is an int2vector or oidvector, as in PostgreSQL (psqlODBC's SQLStatistics reads indkey as '1 2')."""
    projections = _projections(expression, len(schema)) if expression is not None else None
    source = (expression.meta.get(SOURCE) or "") if expression is not None else ""
    fields = []
    for i, f in enumerate(schema):
        projection = projections[i] if projections else None
        column = projection.this if isinstance(projection, exp.Alias) else projection
        t = f.type
        if pa.types.is_list(t) and pa.types.is_integer(t.value_type):
            vector = _VECTORS.get((column.name if isinstance(column, exp.Column) else
                                   f.name if projection is None else "").lower())
            if vector is not None:
                t = pgt.vector(vector)
            elif t.value_type.bit_width > 16:
                t = pa.list_(pa.uint32())
        name = f.name if projection is None else figure_colname(projection, source)[0]
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def _projections(expression: exp.Expression, count: int) -> list[exp.Expression | None] | None:
    """The select list of a query, one entry per result column (None for the columns a star stands for: they
    keep their names), or None when that cannot be told (more than one star, not a query)."""
    while isinstance(expression, exp.SetOperation):  # a UNION's columns are its first query's
        expression = expression.this
    if isinstance(expression, exp.Subquery):
        return _projections(expression.this, count)
    if not isinstance(expression, exp.Select):
        return None
    items = expression.expressions
    stars = [i for i, p in enumerate(items) if isinstance(p, exp.Star) or
             (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))]
    if not stars:
        return list(items) if len(items) == count else None
    if len(stars) > 1 or count < len(items) - 1:
        return None
    at = stars[0]
    return list(items[:at]) + [None] * (count - len(items) + 1) + list(items[at + 1:])


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.names != schema.names:
        batch = batch.rename_columns(schema.names)
    return batch if batch.schema == schema else batch.cast(schema, safe=False)


def _session_schema(table: str) -> pa.Schema:
    """The Arrow schema of a pg_catalog table served from the session (its rows registered per query)."""
    fields = []
    for c in _split_spec(PG_TABLES[table]):
        name, t = c.split(" ", 1)
        fields.append(pa.field(name, {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "BOOLEAN": pa.bool_(),
                                      "VARCHAR[]": pa.list_(pa.string()),
                                      "TIMESTAMPTZ": pa.timestamp("us", "UTC")}[t]))
    return pa.schema(fields)


def _settings_schema() -> pa.Schema:
    return _session_schema("pg_settings")


def _cursors_schema() -> pa.Schema:
    return _session_schema("pg_cursors")


def _type_row(oid, name, namespace, size, typtype, category, elem=0, array=0, relid=0) -> dict:
    return {"oid": oid, "typname": name, "typnamespace": namespace, "typowner": OWNER, "typlen": size,
            "typbyval": size in (1, 2, 4, 8), "typtype": typtype, "typcategory": category,
            "typispreferred": False, "typisdefined": True, "typdelim": ",", "typrelid": relid,
            "typsubscript": 0, "typelem": elem, "typarray": array, "typinput": 0, "typoutput": 0,
            "typreceive": 0, "typsend": 0, "typmodin": 0, "typmodout": 0, "typanalyze": 0, "typalign": "i",
            "typstorage": "p", "typnotnull": False, "typbasetype": 0, "typtypmod": -1, "typndims": 0,
            "typcollation": 100 if category == "S" else 0}


FIRST_PROC = 9000


def _io_functions(rows: dict[str, list[dict]]) -> None:
    """Each type's input/output/receive/send functions (``pgt.io_functions``) in its pg_type row (their oids)
    and in pg_proc (name, namespace pg_catalog, the type they return or take)."""
    procs: dict[str, int] = {}

    def proc(name: str, returns: int, argument: int) -> int:
        if name not in procs:
            procs[name] = FIRST_PROC + len(procs)
            rows["pg_proc"].append({
                "oid": procs[name], "proname": name, "pronamespace": PG_CATALOG, "proowner": OWNER, "prolang": 12,
                "procost": 1.0, "prorows": 0.0, "provariadic": 0, "prosupport": 0, "prokind": "f",
                "prosecdef": False, "proleakproof": False, "proisstrict": True, "proretset": False,
                "provolatile": "i", "proparallel": "s", "pronargs": 1, "pronargdefaults": 0, "prorettype": returns,
                "proargtypes": [argument], "prosrc": name})
        return procs[name]

    for row in rows["pg_type"]:
        inp, out, recv, send = pgt.io_functions(row["oid"], row["typname"])
        oid = row["oid"] if row["oid"] in pgt.TYPES and row["oid"] not in pgt.ELEMENT_OF else pgt.RECORD \
            if row["typrelid"] else pgt.ANYARRAY
        row["typinput"] = proc(inp, oid, CSTRING)
        row["typoutput"] = proc(out, CSTRING, oid)
        row["typreceive"] = proc(recv, oid, INTERNAL)
        row["typsend"] = proc(send, pgt.BYTEA, oid)


CSTRING, INTERNAL = 2275, 2281


def _text(value) -> str:
    if isinstance(value, dict):
        return str(value.get("purpose") or value.get("usage") or next(iter(value.values()), ""))
    return str(value)


def _keywords() -> list[dict]:
    reserved = ["all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case",
                "cast", "check", "collate", "column", "constraint", "create", "current_catalog", "current_date",
                "current_role", "current_time", "current_timestamp", "current_user", "default", "deferrable",
                "desc", "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "from",
                "grant", "group", "having", "in", "initially", "intersect", "into", "lateral", "leading", "limit",
                "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or", "order", "placing",
                "primary", "references", "returning", "select", "session_user", "some", "symmetric", "table",
                "then", "to", "trailing", "true", "union", "unique", "user", "using", "variadic", "when", "where",
                "window", "with"]
    return [{"word": w, "catcode": "R", "barelabel": True, "catdesc": "reserved", "baredesc": "can be bare label"}
            for w in reserved]


# -- rewriting a client's catalog query -----------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogPlan:
    """What a catalog query ran (for its ``Result``): SQL over the emulated catalog, no dataset read."""

    sql: str
    policies: tuple = ()
    warnings: tuple = ()
    datasets: tuple = ()
    columns: tuple = ()


class CatalogEngine:
    """Answers catalog queries for every session of a server (catalogs cached per principal).

    A query is rewritten over the emulated tables, verified (``catalog_verify.py``), run on the
    principal's scratch database with the server's time-out (lowered by the session's
    statement_timeout) and the connection's ``Cancellation``, streamed, and audited like any query."""

    def __init__(self, platform, timeout: float | None = None):
        self.platform = platform
        self.timeout = timeout  # the server's limit (it lowers the mesh's query_timeout_seconds); None: none
        self._cache: LRUCache[tuple, PrincipalCatalog] = LRUCache(maxsize=64)
        self._lock = threading.Lock()

    def catalog(self, principal, database: str, purpose: str | None = None) -> PrincipalCatalog:
        key = (principal.fingerprint, self.platform.state.namespace.version, database, purpose)
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            found = PrincipalCatalog(self.platform, principal, database, purpose)
            with self._lock:
                self._cache[key] = found
        return found

    def _limit(self, session) -> float | None:
        """The mesh's query_timeout_seconds, lowered by the server's time-out, then by statement_timeout."""
        limits = [self.platform.mesh.settings["query_timeout_seconds"], self.timeout]
        return effective_timeout(min((x for x in limits if x), default=None), session)

    def _start(self, expression: exp.Expression, principal, session, params: list[Any],
               cancel: Cancellation | None) -> tuple[str, Any]:
        """(the SQL that runs, its execution); refusals and engine errors raised as Quanta errors."""
        timeout = self._limit(session)
        catalog = self.catalog(principal, session.database, session.get("quanta.purpose") or None)
        try:
            sql, uses, used, arrays = rewrite(expression, session, catalog, params)
            verify(sql, catalog.relations, catalog.macros)
        except errors.Error:
            log.info("catalog query refused: %s", expression.sql("postgres"))
            raise
        params = [_array(params[i - 1]) if i in arrays else params[i - 1] for i in used if i - 1 < len(params or [])]
        tables = {name: pa.Table.from_pylist(SESSION_TABLES[name][0](session), schema=SESSION_TABLES[name][1]())
                  for name in uses} or None
        log.debug("catalog query %s -> %s", expression.sql("postgres"), sql)
        try:
            return sql, catalog.scratch.execute(sql, params, timeout, cancel, tables)
        except errors.Error:
            log.info("catalog query failed: %s\n  rewritten: %s", expression.sql("postgres"), sql)
            raise

    def run(self, expression: exp.Expression, principal, session, params: list[Any], oids: list[int], *,
            sql: str | None = None, cancel: Cancellation | None = None) -> RowSource:
        """Run a client's catalog query (``sql``: its text, for the audit log): its rows, streaming."""
        started = time.perf_counter()
        entry = audit.Entry(principal.name, sql or expression.sql("postgres"), "pgwire")

        def finish(rows: int | None, error: BaseException | None) -> None:
            entry.rows, entry.error = rows, (str(error) if error is not None else None)
            entry.status = "ok" if error is None else "denied" if isinstance(error, errors.AccessDenied) else \
                "cancelled" if isinstance(error, (errors.QueryTimeout, errors.QueryCancelled)) else "error"
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            self.platform.audit.record(entry)

        try:
            entry.rewritten_sql, execution = self._start(expression, principal, session, params, cancel)
        except errors.Error as e:
            finish(None, e)
            raise
        result = Result(execution, CatalogPlan(entry.rewritten_sql), on_close=finish)
        schema = _oid_schema(result.schema, expression)
        return RowSource(schema, (_conform(b, schema) for b in result.record_batches()), result)

    def schema(self, expression: exp.Expression, principal, session, params: list[Any], oids: list[int]) -> pa.Schema:
        """The result's columns without running it (Describe): verified and limited, not audited."""
        query = expression
        if isinstance(expression, exp.Query):
            expression = exp.select("*").from_(exp.Subquery(this=expression.copy(),
                                               alias=exp.TableAlias(this=exp.to_identifier("q")))).limit(0)
            params = [None] * len(params or [])
        _, execution = self._start(expression, principal, session, params, None)
        try:
            return _oid_schema(execution.schema, query)
        finally:
            execution.close()


def _array(value: Any) -> Any:
    """A parameter of ``= ANY($n)`` sent as text ('{r,p}', an untyped parameter): its array."""
    if isinstance(value, str) and value.strip().startswith("{"):
        return pgt.decode_text(value, pgt.ARRAY_OF[pgt.TEXT])
    return value


def _settings_rows(session) -> list[dict]:
    return [{"name": k, "setting": v, "category": "Quanta", "short_desc": "", "context": "user",
             "vartype": "string", "source": "session", "boot_val": v, "reset_val": v, "pending_restart": False}
            for k, v in sorted(session.settings.items())]


def _cursors_rows(session) -> list[dict]:
    """The session's open cursors (DECLARE), as PostgreSQL's pg_cursors lists them."""
    return session.open_cursors() if session.open_cursors is not None else []


# the pg_catalog tables of one session, registered as temp.<name> for the query that reads them: rows, schema
SESSION_TABLES = {"pg_settings_session": (_settings_rows, _settings_schema),
                  "pg_cursors_session": (_cursors_rows, _cursors_schema)}


def _literal(value) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _search_path(session, catalog: PrincipalCatalog, existing: bool = False) -> list[str]:
    """The schemas of the session's search_path that exist (like PostgreSQL's current_schemas): listed
    ones, or with ``existing`` also those of datasets this principal may not read."""
    known = catalog.schemas | ({s for s, _ in catalog.existing} if existing else set())
    return [s for s in search_path(session) if s in known]


def rewrite(expression: exp.Expression, session, catalog: PrincipalCatalog,
            params: list | None = None) -> tuple[str, bool, list[int], set[int]]:
    """The DuckDB SQL of a client's catalog query over the emulated tables; the session's tables it reads;
    the parameters it still uses ($n, in order); those that are arrays (``= ANY($n)``: a text value such
    as '{r,p}' is one, as in PostgreSQL, where the parameter is then typed text[])."""
    tree = expression.copy()
    uses: set[str] = set()  # the session's tables it reads (SESSION_TABLES)
    array_params: set[int] = set()

    def parameter_value(node: exp.Expression) -> tuple[bool, Any]:
        """(is it a parameter, its value when known) of ``$n`` or ``$n::type``."""
        inner = node.this if isinstance(node, exp.Cast) else node
        if isinstance(inner, exp.Parameter) and isinstance(inner.this, exp.Literal) and \
                str(inner.this.this).isdigit():
            i = int(inner.this.this)
            return True, (params[i - 1] if params is not None and i - 1 < len(params) else None)
        return False, None

    def table(node: exp.Table) -> exp.Expression:
        if isinstance(node.this, exp.Anonymous):
            fname = str(node.this.this).lower()
            if fname == "pg_get_keywords":
                return exp.table_("keywords", db="pgc", alias=node.alias or None)
            if fname == "pg_show_all_settings":
                uses.add("pg_settings_session")
                return exp.table_("pg_settings_session", db="temp", alias=node.alias or None)
            if fname == "_pg_expandarray":  # information_schema._pg_expandarray(a): rows (x, n)
                array = sub(node.this.expressions[0]) if node.this.expressions else exp.null()
                rows = exp.select(
                    exp.alias_(exp.Anonymous(this="unnest", expressions=[array.copy()]), "x"),
                    exp.alias_(exp.Anonymous(this="unnest", expressions=[exp.Anonymous(this="range", expressions=[
                        exp.Literal.number(1), exp.Add(this=exp.Anonymous(this="len", expressions=[array.copy()]),
                                                      expression=exp.Literal.number(1))])]), "n"))
                return exp.Subquery(this=rows, alias=node.args.get("alias") or
                                    exp.TableAlias(this=exp.to_identifier("_pg_expandarray")))
            return node
        if not isinstance(node.this, exp.Identifier):  # a table function: pg_catalog.unnest(...)
            node.set("db", None)
            node.set("catalog", None)
            alias = node.args.get("alias")
            if isinstance(alias, exp.TableAlias) and alias.this is not None and not alias.columns:
                alias.set("columns", [exp.to_identifier(alias.name)])  # PostgreSQL: the alias names the column too
            return node
        db, name = node.text("db").lower(), node.name.lower()
        alias = node.args.get("alias")
        if db == "information_schema" or (not db and False):
            if name not in INFO_TABLES:
                raise UnknownObject(f'relation "information_schema.{name}" does not exist')
            new = exp.table_(name, db="pgi")
        elif db == "pg_catalog" or (not db and name in PG_TABLES):
            if name in ("pg_settings", "pg_cursors"):
                uses.add(f"{name}_session")
                new = exp.table_(f"{name}_session", db="temp")
            elif name not in PG_TABLES:
                raise UnknownObject(f'relation "pg_catalog.{name}" does not exist')
            else:
                new = exp.table_(name, db="pgc")
        elif not db and name.startswith("pg_"):
            raise UnknownObject(f'relation "{name}" does not exist')
        elif not name:
            return node
        elif db or name:
            if db or catalog is not None and not _is_cte(node):
                raise StatementRefused(f"a catalog query cannot read {node.sql('postgres')}: it reads pg_catalog "
                                       "and information_schema; query the mesh's datasets on their own")
            return node
        else:
            return node
        if alias is not None:
            new.set("alias", alias)
        elif db:
            new.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        if node.args.get("joins"):  # a parenthesised join, (pg_class c join pg_namespace n on ...), hangs here
            new.set("joins", [sub(j) for j in node.args["joins"]])
        return new

    def function(node: exp.Expression) -> exp.Expression | None:
        name = _func_name(node)
        if name is None:
            return None
        args = list(node.expressions) if isinstance(node, exp.Anonymous) else \
            [a for a in node.args.values() if isinstance(a, exp.Expression)]
        if name in ("current_user", "session_user", "current_role", "user"):
            return exp.Literal.string(session.user)
        if name == "current_database":
            return exp.Literal.string(session.database)
        if name == "current_schema":
            path = [p for p in _search_path(session, catalog) if p in ("public",) or True]
            return exp.Literal.string(path[0] if path else "public")
        if name == "current_schemas":
            implicit = isinstance(args[0], exp.Boolean) and args[0].this if args else False
            path = (["pg_catalog"] if implicit else []) + _search_path(session, catalog)
            return exp.Array(expressions=[exp.Literal.string(p) for p in path])
        if name == "version":
            return exp.Literal.string(VERSION)
        if name == "pg_backend_pid":
            return exp.Literal.number(0)
        if name in ("pg_postmaster_start_time", "pg_conf_load_time"):
            return exp.CurrentTimestamp()
        if name == "current_setting":
            is_parameter, setting = parameter_value(args[0]) if args else (False, None)
            if is_parameter and setting is None:  # described without its value: a text column
                return exp.cast(exp.null(), exp.DataType.build("VARCHAR"))
            if not is_parameter:
                if not args or not isinstance(args[0], exp.Literal):
                    raise ProgrammingError("current_setting() takes a constant setting name here")
                setting = args[0].name
            value = session.get(str(setting))
            if value is None and not (len(args) > 1 and isinstance(args[1], exp.Boolean) and args[1].this):
                raise UnknownSetting(f'unrecognized configuration parameter "{setting}"')
            return exp.cast(_literal(value), exp.DataType.build("VARCHAR"))
        if name in ("quote_literal", "quote_nullable") and len(args) == 1:
            return quote_literal(sub(args[0]), nullable=name == "quote_nullable")
        if name == "set_config":
            if len(args) < 2 or not all(isinstance(a, exp.Literal) for a in args[:2]):
                raise ProgrammingError("set_config() takes constant arguments here")
            session.set(args[0].name, args[1].name)
            return exp.Literal.string(args[1].name)
        if name in ("json_build_object", "jsonb_build_object"):
            # each value parenthesised: ``json_object(k, a = b)`` is DuckDB but not what sqlglot parses back
            return exp.Anonymous(this="json_object", expressions=[exp.Paren(this=sub(a)) for a in args])
        if name == "pg_typeof":
            return exp.Literal.string("unknown")
        if name in _TRUE_FUNCS:
            return exp.true()
        if name in _FALSE_FUNCS:
            return exp.false()
        if name in _NULL_FUNCS:
            return exp.null()
        if name in _ZERO_FUNCS:
            return exp.Literal.number(0)
        if name in _RELATION_ARGUMENT and catalog is not None:
            args = _check_relation_argument(name, args, session, catalog)
        if name == "pg_table_is_visible":  # visible: in a schema of the session's search_path
            path = [catalog.schema_oids[p] for p in ["pg_catalog"] + _search_path(session, catalog)]
            return _macro("pg_table_is_visible", sub(args[0]) if args else exp.null(),
                          exp.Array(expressions=[exp.Literal.number(o) for o in path]))
        if name in MACROS:
            arity = MACROS[name]
            args = [sub(a) for a in args]
            args = args + [exp.null()] * (arity - len(args))
            if name == "obj_description" and len(args) == 2 and isinstance(args[1], exp.Null):
                args[1] = exp.Literal.string("pg_class")
            return exp.Dot(this=exp.to_identifier("pgc"), expression=exp.Anonymous(this=name, expressions=args))
        return None

    def transform(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table):
            return table(node)
        if isinstance(node, exp.Dot) and isinstance(node.this, exp.Identifier) and \
                node.this.name.lower() == "information_schema" and isinstance(node.expression, exp.Anonymous) and \
                str(node.expression.this).lower() == "_pg_expandarray":
            # a set-returning function in the select list (pgjdbc's getPrimaryKeys, getIndexInfo): one
            # struct (x, n) per element, unnested in step with any other of the same list
            return exp.Anonymous(this="unnest", expressions=[_macro("_pg_expandarray",
                                                                   *[sub(a) for a in node.expression.expressions])])
        if isinstance(node, exp.Bracket) and isinstance(node.this, exp.Column) and len(node.expressions) == 1 and \
                node.this.name.lower() in _VECTORS:
            # int2vector and oidvector count from 0 (i.indkey[ia.attnum-1]: psqlODBC's SQLPrimaryKeys)
            node.set("expressions", [exp.Add(this=exp.Paren(this=node.expressions[0]), expression=exp.Literal.number(1))])
            return node
        if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any) and \
                isinstance(_unparen(node.expression.this), exp.Column):
            # x = ANY(t.array_column) (SQLAlchemy 1.4's get_indexes, in a LEFT JOIN's condition, where DuckDB
            # cannot run the subquery ANY becomes): a list lookup
            return exp.Anonymous(this="list_contains", expressions=[_unparen(node.expression.this), node.this])
        if isinstance(node, exp.Any):
            inner = node.this.this if isinstance(node.this, exp.Paren) else node.this
            if isinstance(inner, exp.Literal) and inner.is_string:  # = ANY('{r,p}'): an array literal
                items = pgt.decode_text(inner.name, pgt.ARRAY_OF[pgt.TEXT])
                node.set("this", exp.Paren(this=exp.Array(expressions=[_literal(v) for v in items])))
                return node
            is_parameter, _ = parameter_value(inner)
            if is_parameter and not isinstance(inner, exp.Cast):
                array_params.add(int(inner.this.this))
            return node
        if isinstance(node, exp.Dot) and isinstance(node.this, exp.Identifier) and \
                node.this.name.lower() == "pg_catalog" and isinstance(node.expression, exp.Func):
            inner = node.expression
            replaced = function(inner)
            return replaced if replaced is not None else sub(inner)
        if isinstance(node, exp.Func) and not (isinstance(node.parent, exp.Dot) and node.parent.expression is node):
            if isinstance(node.parent, exp.Table):
                return node
            replaced = function(node)
            if replaced is not None:
                return replaced
        if isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier) and \
                not node.this.quoted and node.name.lower() in ("current_user", "session_user", "user",
                                                               "current_role", "current_schema", "current_catalog"):
            key = node.name.lower()
            if key == "current_catalog":
                return exp.Literal.string(session.database)
            if key == "current_schema":
                path = _search_path(session, catalog)
                return exp.Literal.string(path[0] if path else "public")
            return exp.Literal.string(session.user)
        if isinstance(node, exp.Column) and node.text("db").lower() in ("pg_catalog", "information_schema"):
            node.set("db", None)  # pg_catalog.pg_namespace.nspname: the table is aliased by its name
            node.set("catalog", None)
            return node
        if isinstance(node, exp.Cast):
            return cast(node)
        if isinstance(node, exp.Operator):
            op = str(node.args.get("operator") or "").lower().replace("pg_catalog.", "").strip()
            left, right = sub(node.this), sub(node.expression)
            ops = {"~": lambda: exp.RegexpLike(this=left, expression=right),
                   "!~": lambda: exp.not_(exp.RegexpLike(this=left, expression=right)),
                   "~*": lambda: exp.RegexpILike(this=left, expression=right),
                   "!~*": lambda: exp.not_(exp.RegexpILike(this=left, expression=right)),
                   "=": lambda: exp.EQ(this=left, expression=right),
                   "<>": lambda: exp.NEQ(this=left, expression=right),
                   "~~": lambda: exp.Like(this=left, expression=right),
                   "!~~": lambda: exp.not_(exp.Like(this=left, expression=right))}
            if op in ops:
                return exp.Paren(this=ops[op]())
            raise ProgrammingError(f"unsupported operator {op} in a catalog query")
        if isinstance(node, exp.Collate):
            return sub(node.this)
        return node

    def sub(node: exp.Expression) -> exp.Expression:
        return node.transform(transform, copy=False) if isinstance(node, exp.Expression) else node

    def cast(node: exp.Cast) -> exp.Expression:
        target = _cast_target(node)
        inner = sub(node.this)
        if target in ("regclass", "regtype", "regproc", "regprocedure", "regnamespace", "regrole"):
            kind = {"regprocedure": "regproc", "regrole": "regnamespace"}.get(target, target)
            if isinstance(inner, (exp.Parameter, exp.Placeholder)) and kind in ("regclass", "regtype"):
                return _macro(f"{kind}_oid", inner)
            if isinstance(inner, exp.Literal) and inner.is_string:
                if kind == "regproc":
                    return _macro("regproc_oid", inner)
                if kind == "regnamespace":
                    return _macro("to_regnamespace", inner)
                return _macro(f"{kind}_oid", inner)
            as_name = isinstance(node.parent, exp.Cast) and _cast_target(node.parent) in (
                "text", "varchar", "name", "character varying") or _projected(node)
            if as_name:
                if kind == "regtype":
                    return _macro("format_type", inner, exp.null())
                return _macro(f"{kind}_name", inner)
            return exp.cast(inner, exp.DataType.build("BIGINT"))
        if target in ("oid", "regoper", "xid", "cid", "tid"):
            return exp.cast(inner, exp.DataType.build("BIGINT"))
        if target in ("name", "char", "bpchar", "text[]", "name[]") or target.startswith("character"):
            return exp.cast(inner, exp.DataType.build("VARCHAR[]" if target.endswith("[]") else "VARCHAR"))
        if target in ("int2vector", "oidvector") and isinstance(inner, exp.Literal) and inner.is_string:
            try:  # '1 2'::int2vector: numbers separated by spaces
                items = [int(v) for v in inner.name.split()]
            except ValueError:
                raise errors.DataError(f'invalid input syntax for type {target}: "{inner.name}"') from None
            return exp.cast(exp.Array(expressions=[exp.Literal.number(v) for v in items]),
                            exp.DataType.build("BIGINT[]"))
        if target in ("int2vector", "oidvector", "_oid", "oid[]", "int2[]", "smallint[]"):
            return exp.cast(inner, exp.DataType.build("BIGINT[]"))
        if target in ("regconfig", "regdictionary"):
            return exp.Literal.number(0)
        if "pg_catalog." in node.to.sql("postgres").lower():
            try:
                return exp.cast(inner, exp.DataType.build(target, dialect="postgres"))
            except Exception:
                return exp.cast(inner, exp.DataType.build("VARCHAR"))
        node.set("this", inner)
        return node

    if isinstance(tree, exp.Select):
        for i, projection in enumerate(list(tree.expressions)):
            target = projection.expression if isinstance(projection, exp.Dot) else projection
            if isinstance(target, exp.Func) and not isinstance(projection, exp.Alias):
                name = _func_name(target)
                if name in CATALOG_FUNCTIONS:
                    name = {"current_user": "current_user"}.get(name, name)
                    tree.expressions[i].replace(exp.alias_(projection.copy(), name, quoted=True))
            elif isinstance(projection, exp.Column) and not projection.table and \
                    projection.name.lower() in ("current_user", "session_user", "user", "current_role",
                                                "current_schema", "current_catalog"):
                tree.expressions[i].replace(exp.alias_(projection.copy(), projection.name.lower(), quoted=True))
    tree = tree.transform(transform, copy=False)
    # parameters inside replaced functions are gone: number the remaining ones $1..$k (DuckDB wants all used)
    used = sorted({int(p.this.this) for p in tree.find_all(exp.Parameter)
                   if isinstance(p.this, exp.Literal) and str(p.this.this).isdigit()})
    renumber = {old: new for new, old in enumerate(used, start=1)}
    for p in list(tree.find_all(exp.Parameter)):
        if isinstance(p.this, exp.Literal) and str(p.this.this).isdigit():
            p.set("this", exp.Literal.number(renumber[int(p.this.this)]))
    return tree.sql("duckdb", comments=False), uses, used, array_params  # comments never reach the engine


# has_x_privilege([user,] relation, ...): the position of the relation argument, by number of arguments
_RELATION_ARGUMENT = {"has_table_privilege": {2: 0, 3: 1}, "has_any_column_privilege": {2: 0, 3: 1},
                      "has_column_privilege": {3: 0, 4: 1}, "has_schema_privilege": {2: 0, 3: 1}}


class UnknownSchema(UnknownObject):
    sqlstate = "3F000"  # invalid_schema_name


def _check_relation_argument(name: str, args: list, session, catalog: PrincipalCatalog) -> list:
    """A relation (or schema) named by text must exist, like PostgreSQL (42P01 / 3F000): a denied dataset
    exists (the answer is false), a name that names nothing is an error. An unqualified name is looked up in
    pg_catalog then on the session's search_path, and passed on qualified."""
    at = _RELATION_ARGUMENT[name].get(len(args))
    if at is None or not isinstance(args[at], exp.Literal) or not args[at].is_string:
        return args
    text = args[at].name
    if name == "has_schema_privilege":
        schema = _unquote_name(text)
        if schema not in catalog.schemas and schema not in {s for s, _ in catalog.existing}:
            raise UnknownSchema(f'schema "{text}" does not exist')
        return args
    parts = [_unquote_name(p) for p in split_dotted(text)]
    if len(parts) == 2:
        if tuple(parts) not in catalog.existing:
            raise UnknownObject(f'relation "{text}" does not exist')
        return args
    if len(parts) != 1:
        raise UnknownObject(f'relation "{text}" does not exist')
    for schema in ["pg_catalog"] + _search_path(session, catalog, existing=True):
        if (schema, parts[0]) in catalog.existing:
            args = list(args)
            args[at] = exp.Literal.string(f"{schema}.{parts[0]}")
            return args
    raise UnknownObject(f'relation "{text}" does not exist')


def _unquote_name(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] == '"':
        return part[1:-1].replace('""', '"')
    return part.lower()


def _macro(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Dot(this=exp.to_identifier("pgc"), expression=exp.Anonymous(this=name, expressions=list(args)))


def _projected(node: exp.Expression) -> bool:
    parent = node.parent
    while isinstance(parent, (exp.Alias, exp.Paren)):
        node, parent = parent, parent.parent
    return isinstance(parent, exp.Select) and node in parent.expressions


def _is_cte(node: exp.Table) -> bool:
    name = node.name.lower()
    scope = node.parent
    while scope is not None:
        w = scope.args.get("with_") or scope.args.get("with")
        if isinstance(w, exp.With) and any(c.alias_or_name.lower() == name for c in w.expressions):
            return True
        scope = scope.parent
    return False


def _unparen(node: exp.Expression) -> exp.Expression:
    return node.this if isinstance(node, exp.Paren) else node


def _acl_name(user: str) -> str:
    """A role name as an aclitem writes it (double-quoted unless plain)."""
    import re

    return user if re.fullmatch(r"[A-Za-z0-9_]+", user) else '"' + user.replace('"', '""') + '"'
