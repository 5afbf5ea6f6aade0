"""The allow-list of SQL functions a Quanta query may call.

A user's SQL is parsed with ``sqlglot.parse_one(sql, read="duckdb")`` and a rewrite pass walks every
``exp.Func`` node, refusing it unless :func:`is_allowed` says yes.  sqlglot parses a call either to a
*typed* class (``SUM(x)`` -> ``exp.Sum``, ``strftime(d, f)`` -> ``exp.TimeToStr``) or, when it does not
know the name, to ``exp.Anonymous`` carrying the name.  So there are two static, reviewed allow-lists:

* :data:`ALLOWED_FUNCTION_CLASSES`: typed sqlglot classes, decided by ``type(node)`` (exact type, never
  ``isinstance``: a subclass such as ``TryCast`` of ``Cast`` is listed on its own or it is refused).
* :data:`ALLOWED_FUNCTION_NAMES`: lower-case names, decided only for ``exp.Anonymous`` nodes.  It holds
  every safe DuckDB 1.5 scalar, aggregate, window and macro name, *including* names sqlglot parses to a
  typed class: a schema-qualified call (``main.strftime(...)``) or another sqlglot version parses them as
  ``Anonymous`` too.

"Safe" means a pure function of its arguments (scalar, aggregate or window) that cannot read files, the
network, the environment, settings, secrets, the catalog or database metadata, cannot change state and
is not a table function.  ``now()``/``current_date``, ``random()``, ``uuid()`` and ``error()`` count as
safe.  Everything not listed is refused: this is an allow-list, so new sqlglot classes and new DuckDB or
extension functions are refused until somebody reviews them here.

How the lists were built (sqlglot 30.30, DuckDB 1.5.5 with core_functions, icu, json, parquet):

1. every subclass of ``exp.Func`` (570 of them) was classified by hand; for each one the DuckDB SQL that
   sqlglot *generates* was checked too, since that is what runs.  A class is allowed when it is pure and
   DuckDB runs it, natively or through sqlglot's rewrite into plain DuckDB expressions.  Pure classes
   whose DuckDB output names a function DuckDB does not have (mostly Snowflake/BigQuery functions) are
   refused as "not available in DuckDB", so users get a clear message instead of a catalog error; three
   of them (``Host``, ``StPoint``, ``StDistance``) would even make DuckDB autoload an extension.
2. ``select distinct function_name, function_type from duckdb_functions()`` (scalar, aggregate, window,
   macro) was classified the same way; macro bodies were read (``get_block_size`` and
   ``pg_get_viewdef`` query ``pragma_database_size()``/``duckdb_views()``, for example).

Not this module's job, but worth knowing for the other passes:

* table functions in ``FROM`` (``range``, ``generate_series``, ``unnest``, ``read_csv`` ...) are refused by
  the FROM pass; ``range``/``generate_series``/``unnest``/``repeat`` stay allowed here as scalars.
* DuckDB resolves a few niladic functions written *without* parentheses; sqlglot parses ``user``,
  ``current_role`` and ``current_schema`` as plain ``exp.Column`` nodes, which this pass never sees.
  :data:`NILADIC_FUNCTION_IDENTIFIERS` lists them for the column-resolution pass: an unqualified column
  with one of these names that no table in scope provides must be refused.
* ``list_aggregate(l, 'name')`` (and ``aggregate``, ``list_aggr``, ``array_aggr``, ``array_aggregate``)
  run the aggregate named by a *string*; every DuckDB aggregate is pure, so they are allowed, but the
  named aggregate is not an ``exp.Func`` node and is not checked here.
* ``COLUMNS(...)`` and ``*`` select columns by pattern: column governance must expand them.
"""

from __future__ import annotations

from types import MappingProxyType
import re
from functools import lru_cache

from sqlglot import exp

__all__ = [
    "ALLOWED_FUNCTION_CLASSES",
    "ALLOWED_FUNCTION_NAMES",
    "NILADIC_FUNCTION_IDENTIFIERS",
    "MISSING_FUNCTION_CLASSES",
    "function_name",
    "is_allowed",
    "explain_refusal",
]


# --------------------------------------------------------------------------------------------------
# Typed sqlglot classes that are allowed (names of classes in ``sqlglot.exp``; resolved below, and a
# name this sqlglot version does not have is skipped, see MISSING_FUNCTION_CLASSES).
# --------------------------------------------------------------------------------------------------

_ALLOWED_CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    # Boolean connectors are exp.Func subclasses too (a AND b is an exp.And node).
    "logic and conditionals": (
        "And", "Or", "Xor", "Booland", "Boolnot", "Boolor",
        "Case", "If", "Coalesce", "Nullif", "Nvl2", "DecodeCase", "EqualNull",
        "Greatest", "Least", "Exists", "Try", "Collate",
        "Columns",  # COLUMNS(*) / COLUMNS('re') star expression; column governance expands it
    ),
    "casts and conversions": (
        "Cast", "TryCast", "JSONCast", "Convert", "Int64", "ToBoolean", "ToDouble", "ToNumber",
        "ToChar", "ToVariant", "String", "Typeof", "ToArray", "ToMap",
    ),
    "aggregates": (
        "Sum", "Count", "CountIf", "Avg", "Min", "Max", "AnyValue", "First", "Last",
        "ArgMax", "ArgMin", "Median", "Mode", "Quantile", "ApproxQuantile", "PercentileCont",
        "PercentileDisc", "ApproxDistinct", "ApproxTopK",
        "Stddev", "StddevPop", "StddevSamp", "Variance", "VariancePop", "Kurtosis", "Skewness",
        "Corr", "CovarPop", "CovarSamp",
        "RegrAvgx", "RegrAvgy", "RegrCount", "RegrIntercept", "RegrR2", "RegrSlope", "RegrSxx",
        "RegrSxy", "RegrSyy", "RegrValx", "RegrValy",
        "LogicalAnd", "LogicalOr", "BoolxorAgg", "BitwiseAndAgg", "BitwiseOrAgg", "BitwiseXorAgg",
        "ArrayAgg", "ArrayConcatAgg", "ArrayUniqueAgg", "GroupConcat",
        "JSONObjectAgg", "JSONBObjectAgg",
        "Grouping", "GroupingId",
        # Snowflake sketches and bitmaps that sqlglot rewrites into plain DuckDB expressions
        "Minhash", "MinhashCombine", "ApproximateSimilarity", "BitmapConstructAgg",
    ),
    "window functions": (
        "RowNumber", "Rank", "DenseRank", "PercentRank", "CumeDist", "Ntile",
        "Lag", "Lead", "FirstValue", "LastValue", "NthValue",
        "Seq1", "Seq2", "Seq4", "Seq8",  # become ROW_NUMBER() OVER (...) arithmetic
    ),
    "math": (
        "Abs", "Sign", "Ceil", "Floor", "Round", "Trunc", "Sqrt", "Cbrt", "Pow", "Exp", "Ln", "Log",
        "Factorial", "Pi", "Degrees", "Radians",
        "Sin", "Cos", "Tan", "Cot", "Asin", "Acos", "Atan", "Atan2", "Sinh", "Cosh", "Tanh",
        "Asinh", "Acosh", "Atanh",
        "IsInf", "IsNan", "SafeDivide",
        "Getbit", "BitwiseCount", "BitmapBitPosition", "BitmapBucketNumber",
        "CosineDistance", "EuclideanDistance",
    ),
    "random and identifiers": (
        "Rand", "Randstr", "Normal", "Uniform", "Zipf", "Uuid",
    ),
    "strings": (
        "Concat", "ConcatWs", "Length", "BitLength", "ByteLength", "RtrimmedLength",
        "Lower", "Upper", "Initcap", "Trim", "Pad", "Left", "Right", "Substring", "Stuff",
        "Replace", "Translate", "Reverse", "Repeat", "Space", "Split", "SplitPart",
        "StrPosition", "Contains", "StartsWith", "EndsWith", "Format",
        "Ascii", "Chr", "Unicode", "Levenshtein", "JarowinklerSimilarity",
        "Encode", "Decode", "Hex", "LowerHex", "Unhex", "HexDecodeString",
        "ToBase64", "FromBase64", "Base64Encode", "Base64DecodeBinary", "Base64DecodeString",
        "ToBinary",
    ),
    "regular expressions": (
        "RegexpLike", "RegexpILike", "RegexpFullMatch", "RegexpExtract", "RegexpExtractAll",
        "RegexpReplace", "RegexpSplit", "RegexpCount", "RegexpInstr",
    ),
    "hashes": (
        "MD5", "MD5Digest", "SHA", "SHA1Digest", "SHA2", "SHA2Digest",
    ),
    "dates and times": (
        "CurrentDate", "CurrentTime", "CurrentTimestamp", "Localtime", "Localtimestamp",
        "UtcDate", "UtcTime", "UtcTimestamp",
        "Date", "Datetime", "Time", "Timestamp",
        "DateAdd", "DateSub", "DateDiff", "DateTrunc", "DateBin",
        "DatetimeAdd", "DatetimeSub", "DatetimeDiff", "DatetimeTrunc",
        "TimeAdd", "TimeSub", "TimeDiff", "TimeSlice",
        "TimestampAdd", "TimestampSub", "TimestampDiff", "TimestampTrunc",
        "TsOrDsAdd", "TsOrDsDiff", "AddMonths", "MonthsBetween", "NextDay", "PreviousDay",
        "LastDay", "WeekStart",
        "Extract", "GetExtract", "Year", "Quarter", "Month", "Week", "WeekOfYear", "Day",
        "DayOfMonth", "DayOfWeek", "DayOfWeekIso", "DayOfYear", "Hour", "Minute", "Second",
        "YearOfWeek", "YearOfWeekIso", "Dayname", "Monthname",
        "DateFromParts", "TimeFromParts", "TimestampFromParts", "TimestampLtzFromParts",
        "TimestampTzFromParts", "DateFromUnixDate", "MakeInterval",
        "StrToDate", "StrToTime", "StrToUnix", "ParseDatetime", "ParseTime", "TimeToStr",
        "TimeToUnix", "UnixToStr", "UnixToTime", "UnixToTimeStr", "UnixDate", "UnixSeconds",
        "UnixMillis", "UnixMicros", "ToDays",
        "DateStrToDate", "DateToDi", "DiToDate", "TimeStrToDate", "TimeStrToTime",
        "TimeStrToUnix", "TsOrDiToDi", "TsOrDsToDate", "TsOrDsToDatetime", "TsOrDsToTime",
        "TsOrDsToTimestamp", "FromISO8601Date", "FromISO8601Timestamp",
        "FromISO8601TimestampNanos", "ConvertTimezone",
        "GenerateDateArray", "GenerateTimestampArray",
    ),
    "lists, arrays, maps and structs": (
        "Array", "List", "ArraySize", "ArrayAppend", "ArrayPrepend", "ArrayConcat",
        "ArrayContains", "ArrayContainsAll", "ArrayContainedBy", "ArrayOverlaps", "ArrayPosition",
        "ArrayDistinct", "ArrayExcept", "ArrayIntersect", "ArrayRemove", "ArrayReverse",
        "ArraySlice", "ArraySort", "ArraySum", "ArrayMax", "ArrayMin", "ArrayToString",
        "ArrayFilter", "ArrayAny", "ArrayCompact", "ArrayConstructCompact", "ArraysZip",
        "Transform", "Reduce", "Flatten", "StringToArray", "StrtokToArray",
        "Explode", "Unnest",  # as scalars; UNNEST in FROM is the FROM pass's business
        "GenerateSeries", "ExplodingGenerateSeries",  # range()/generate_series() as list scalars
        "Map", "VarMap", "MapFromEntries", "MapKeys", "MapSize", "MapContainsKey", "MapCat",
        "MapDelete", "MapInsert", "MapPick",
        "Struct", "StructExtract", "ObjectInsert",
    ),
    "JSON values": (
        "ParseJSON", "CheckJson", "FromJson", "JSONArray", "JSONObject", "JSONExtract",
        "JSONExtractScalar", "JSONExtractArray", "JSONValueArray", "JSONExists", "JSONBExists",
        "JSONFormat", "JSONKeys", "JSONType", "IsArray", "IsNullValue", "StripNullValue",
    ),
}


# --------------------------------------------------------------------------------------------------
# Refusal reasons (for messages only; the allow-lists alone decide).
# --------------------------------------------------------------------------------------------------

_FILES = "it reads files or external data"
_ENV = "it reads the environment"
_SETTINGS = "it reads engine or session settings"
_STATS = "it reads storage statistics of the data rather than the values"
_SECRETS = "it reads secrets"
_CATALOG = "it reads the catalog or database metadata; Quanta provides its own system tables"
_IDENTITY = "it reads session or identity information; Quanta provides the principal itself"
_ENGINE = "it reads engine metadata"
_STATE = "it changes engine or session state"
_SQL = "it runs, binds or inspects SQL statements"
_TABLE = "it is a table function"
_PG = "it is a PostgreSQL compatibility function; Quanta's pgwire layer emulates these"
_SLEEP = "it stalls the engine"
_INTERNAL = "it is an internal DuckDB function"
_MODEL = "it calls an AI/ML model or an external service"
_EXTENSION = "it needs a DuckDB extension that Quanta does not load"
_DYNAMIC = "it builds identifiers or function names dynamically"
_UNSUPPORTED = "it is not available in DuckDB"

# Typed sqlglot classes that are refused, with the reason.  Every exp.Func subclass of sqlglot 30.30
# is either allowed above or listed here (the few abstract bases excepted); see the tests.
_REFUSED_CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    _FILES: ("ReadCSV", "ReadParquet", "ToFile"),
    _IDENTITY: (
        "CurrentUser", "SessionUser", "CurrentRole", "CurrentRoleType", "CurrentUserId",
        "CurrentAvailableRoles", "CurrentSecondaryRoles", "CurrentAccount", "CurrentAccountName",
        "CurrentOrganizationName", "CurrentOrganizationUser", "CurrentClient", "CurrentIpAddress",
        "CurrentSession", "CurrentStatement", "CurrentTransaction", "CurrentRegion",
        "CurrentWarehouse",
    ),
    _CATALOG: ("CurrentCatalog", "CurrentDatabase", "CurrentSchema", "CurrentSchemas", "ObjectId"),
    _ENGINE: ("CurrentVersion",),  # version(): the pgwire layer emulates it
    _SETTINGS: ("CurrentTimezone",),
    _SECRETS: ("Secret",),
    _STATE: ("NextValueFor",),
    _TABLE: (
        "Generator", "Inline", "Stack", "SplitToTable", "StrtokSplitToTable", "Posexplode",
        "PosexplodeOuter", "_ExplodeOuter", "JSONTable", "OpenJSON", "XMLTable", "GapFill",
    ),
    _MODEL: (
        "AIAgg", "AISummarizeAgg", "AIClassify", "AIEmbed", "AIForecast", "AIGenerate",
        "AISimilarity", "Predict", "GenerateBool", "GenerateDouble", "GenerateEmbedding",
        "GenerateInt", "GenerateTable", "GenerateText", "MLForecast", "MLTranslate",
        "VectorSearch", "FeaturesAtTime",
    ),
    _DYNAMIC: (
        "DynamicIdentifier", "SafeFunc", "NetFunc", "Apply",
        "AnonymousAggFunc", "CombinedAggFunc", "ParameterizedAgg", "CombinedParameterizedAgg",
    ),
    _EXTENSION: ("Host", "StPoint", "StDistance"),  # inet / spatial would be autoloaded
    _UNSUPPORTED: (
        # pure, but sqlglot emits a function DuckDB does not have
        "Agg", "ApproxPercentileAccumulate", "ApproxPercentileCombine", "ApproxPercentileEstimate",
        "ApproxQuantiles", "ApproxTopKAccumulate", "ApproxTopKCombine", "ApproxTopKEstimate",
        "ApproxTopSum", "ArrayUnionAgg", "ObjectAgg", "HashAgg", "Hll", "BitmapOrAgg",
        "BitmapCount", "JSONArrayAgg",
        "ArrayAll", "ArrayFirst", "ArrayLast", "ArrayInsert", "ArrayRemoveAt", "Shuffle", "StarMap",
        "CastToStrType", "CheckXml", "Collation", "ConnectByRoot", "Float64", "GetIgnoreCase",
        "LaxBool", "LaxFloat64", "LaxInt64", "LaxString", "ObjectTransform", "ParseIp", "Randn",
        "RangeBucket", "RangeN", "RegDomain", "WidthBucket", "XMLElement", "XMLGet",
        "MatchAgainst",
        "Coth", "Csc", "Csch", "Sec", "Sech", "DotProduct", "ManhattanDistance", "Nanvl",
        "Negative", "Rint", "SafeAdd", "SafeMultiply", "SafeNegate", "SafeSubtract",
        "CurrentDatetime", "CurrentTimestampLTZ", "Systimestamp", "TimeTrunc", "JustifyDays",
        "JustifyHours", "JustifyInterval", "DateToDateStr", "TimeToTimeStr", "TsOrDsToDateStr",
        "CityHash64", "CodePointsToBytes", "CodePointsToString", "Compress", "ConvertToCharset",
        "DecompressBinary", "DecompressString", "Decrypt", "DecryptRaw", "Encrypt", "EncryptRaw",
        "Elt", "FarmFingerprint", "FromBase", "FromBase32", "IsAscii", "MD5NumberLower64",
        "MD5NumberUpper64", "Normalize", "NumberToStr", "Overlay", "ParseBignumeric",
        "ParseNumeric", "ParseUrl", "RegexpSubstr", "SafeConvertBytesToString", "Search",
        "SearchIp", "Soundex", "SoundexP123", "StandardHash", "StrToMap", "Strtok",
        "SubstringIndex", "ToBase32", "ToCodePoints", "ToDecfloat", "TryBase64DecodeBinary",
        "TryBase64DecodeString", "TryHexDecodeBinary", "TryHexDecodeString", "TryToDecfloat",
        "WeightString",
        "JSONArrayAppend", "JSONArrayContains", "JSONArrayInsert", "JSONBContains",
        "JSONBExtract", "JSONBExtractScalar", "JSONBool", "JSONKeysAtDepth", "JSONRemove",
        "JSONSet", "JSONStripNulls", "JSONBContainsAllTopKeys", "JSONBContainsAnyTopKeys",
        "JSONBContainsTopKey", "JSONBDeleteAtPath", "JSONBPathExists",
    ),
}


# --------------------------------------------------------------------------------------------------
# DuckDB function names allowed when sqlglot parses the call as exp.Anonymous.
# --------------------------------------------------------------------------------------------------

_ALLOWED_NAME_GROUPS: dict[str, tuple[str, ...]] = {
    # Syntax-level functions DuckDB accepts that duckdb_functions() does not list.
    "special forms": (
        "if", "ifnull", "coalesce", "nullif", "try", "cast", "try_cast", "extract", "grouping",
        "grouping_id", "columns", "unpack", "unnest", "current_time", "current_timestamp",
        "localtime", "localtimestamp",
    ),
    # PostgreSQL functions DuckDB lacks, rewritten into DuckDB SQL by rewrite/postgres.py (over the wire)
    "postgres forms": ("quote_literal", "quote_nullable", "quote_ident"),
    "aggregates and window functions": (
        "any_value", "approx_count_distinct", "approx_quantile", "approx_top_k", "arbitrary",
        "arg_max", "arg_max_null", "arg_max_nulls_last", "arg_min", "arg_min_null",
        "arg_min_nulls_last", "argmax", "argmin", "array_agg", "avg", "bit_and", "bit_or",
        "bit_xor", "bitstring_agg", "bool_and", "bool_or", "corr", "count", "count_if",
        "count_star", "countif", "covar_pop", "covar_samp", "cume_dist", "dense_rank", "entropy",
        "favg", "fill", "first", "first_value", "fsum", "geomean", "geometric_mean",
        "group_concat", "histogram", "histogram_exact", "json_group_array", "json_group_object",
        "json_group_structure", "kahan_sum", "kurtosis", "kurtosis_pop", "lag", "last",
        "last_value", "lead", "list", "listagg", "mad", "max", "max_by", "mean", "median", "min",
        "min_by", "mode", "nth_value", "ntile", "percent_rank", "product", "quantile",
        "quantile_cont", "quantile_disc", "rank", "rank_dense", "regr_avgx", "regr_avgy",
        "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy",
        "regr_syy", "reservoir_quantile", "row_number", "sem", "skewness", "stddev",
        "stddev_pop", "stddev_samp", "string_agg", "sum", "sum_no_overflow", "sumkahan",
        "var_pop", "var_samp", "variance", "wavg", "weighted_avg",
    ),
    "math and bits": (
        "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bit_count",
        "bit_position", "bitstring", "cbrt", "ceil", "ceiling", "cos", "cosh", "cot", "degrees",
        "divide", "equi_width_bins", "even", "exp", "factorial", "fdiv", "floor", "fmod",
        "gamma", "gcd", "get_bit", "greatest", "greatest_common_divisor", "isfinite", "isinf",
        "isnan", "lcm", "least", "least_common_multiple", "lgamma", "ln", "log", "log10", "log2",
        "mod", "multiply", "nextafter", "pi", "pow", "power", "radians", "round", "round_even",
        "roundbankers", "set_bit", "sign", "signbit", "sin", "sinh", "sqrt", "subtract", "tan",
        "tanh", "trunc", "xor",
    ),
    "strings": (
        "ascii", "bar", "base64", "bin", "bit_length", "char_length", "character_length", "chr",
        "concat", "concat_ws", "contains", "damerau_levenshtein", "decode", "editdist3",
        "encode", "ends_with", "format", "format_bytes", "formatreadabledecimalsize",
        "formatreadablesize", "from_base64", "from_binary", "from_hex", "hamming", "hex",
        "ilike_escape", "instr", "jaccard", "jaro_similarity", "jaro_winkler_similarity",
        "lcase", "left", "left_grapheme", "len", "length", "length_grapheme", "levenshtein",
        "like_escape", "lower", "lpad", "ltrim", "mismatches", "nfc_normalize",
        "not_ilike_escape", "not_like_escape", "octet_length", "ord", "parse_dirname",
        "parse_dirpath", "parse_filename", "parse_formatted_bytes", "parse_path", "position",
        "prefix", "printf", "repeat", "replace", "reverse", "right", "right_grapheme", "rpad",
        "rtrim", "split", "split_part", "starts_with", "str_split", "string_split",
        "string_to_array", "strip_accents", "strlen", "strpos", "substr", "substring",
        "substring_grapheme", "suffix", "to_base", "to_base64", "to_binary", "to_hex",
        "translate", "trim", "ucase", "unbin", "unhex", "unicode", "upper", "url_decode",
        "url_encode",
    ),
    "regular expressions": (
        "regexp_escape", "regexp_extract", "regexp_extract_all", "regexp_full_match",
        "regexp_matches", "regexp_replace", "regexp_split_to_array", "regexp_split_to_table",
        "str_split_regex", "string_split_regex",
    ),
    "hashes, uuids and random": (
        "gen_random_uuid", "hash", "md5", "md5_number", "md5_number_lower", "md5_number_upper",
        "random", "sha1", "sha256", "uuid", "uuid_extract_timestamp", "uuid_extract_version",
        "uuidv4", "uuidv7",
    ),
    "dates and times": (
        "age", "ago", "century", "current_date", "current_localtime", "current_localtimestamp",
        "date_add", "date_diff", "date_part", "date_sub", "date_trunc", "datediff", "datepart",
        "datesub", "datetrunc", "day", "dayname", "dayofmonth", "dayofweek", "dayofyear",
        "days_in_month", "decade", "epoch", "epoch_ms", "epoch_ns", "epoch_us", "era",
        "get_current_time", "get_current_timestamp", "hour", "isodow", "isoyear", "julian",
        "last_day", "make_date", "make_time", "make_timestamp", "make_timestamp_ms",
        "make_timestamp_ns", "make_timestamptz", "microsecond", "millennium", "millisecond",
        "minute", "month", "monthname", "nanosecond", "normalized_interval", "now", "quarter",
        "second", "strftime", "strptime", "time_bucket", "timetz_byte_comparable", "timezone",
        "timezone_hour", "timezone_minute", "to_centuries", "to_days", "to_decades", "to_hours",
        "to_microseconds", "to_millennia", "to_milliseconds", "to_minutes", "to_months",
        "to_quarters", "to_seconds", "to_timestamp", "to_weeks", "to_years", "today",
        "transaction_timestamp", "try_strptime", "week", "weekday", "weekofyear", "year",
        "yearweek",
    ),
    "lists and arrays": (
        "aggregate", "apply", "array_aggr", "array_aggregate", "array_append", "array_apply",
        "array_cat", "array_concat", "array_contains", "array_cosine_distance",
        "array_cosine_similarity", "array_cross_product", "array_distance", "array_distinct",
        "array_dot_product", "array_extract", "array_filter", "array_grade_up", "array_has",
        "array_has_all", "array_has_any", "array_indexof", "array_inner_product",
        "array_intersect", "array_length", "array_negative_dot_product",
        "array_negative_inner_product", "array_pop_back", "array_pop_front", "array_position",
        "array_prepend", "array_push_back", "array_push_front", "array_reduce", "array_resize",
        "array_reverse", "array_reverse_sort", "array_select", "array_slice", "array_sort",
        "array_to_string", "array_to_string_comma_default", "array_transform", "array_unique",
        "array_value", "array_where", "array_zip", "cardinality", "element_at", "filter",
        "flatten", "generate_series", "generate_subscripts", "grade_up", "list_aggr",
        "list_aggregate", "list_any_value", "list_append", "list_apply",
        "list_approx_count_distinct", "list_avg", "list_bit_and", "list_bit_or", "list_bit_xor",
        "list_bool_and", "list_bool_or", "list_cat", "list_concat", "list_contains",
        "list_cosine_distance", "list_cosine_similarity", "list_count", "list_distance",
        "list_distinct", "list_dot_product", "list_element", "list_entropy", "list_extract",
        "list_filter", "list_first", "list_grade_up", "list_has", "list_has_all",
        "list_has_any", "list_histogram", "list_indexof", "list_inner_product",
        "list_intersect", "list_kurtosis", "list_kurtosis_pop", "list_last", "list_mad",
        "list_max", "list_median", "list_min", "list_mode", "list_negative_dot_product",
        "list_negative_inner_product", "list_pack", "list_position", "list_prepend",
        "list_product", "list_reduce", "list_resize", "list_reverse", "list_reverse_sort",
        "list_select", "list_sem", "list_skewness", "list_slice", "list_sort",
        "list_stddev_pop", "list_stddev_samp", "list_string_agg", "list_sum", "list_transform",
        "list_unique", "list_value", "list_var_pop", "list_var_samp", "list_where", "list_zip",
        "range", "reduce", "unpivot_list",
    ),
    "maps, structs and unions": (
        "map", "map_concat", "map_contains", "map_contains_entry", "map_contains_value",
        "map_entries", "map_extract", "map_extract_value", "map_from_entries", "map_keys",
        "map_values", "remap_struct", "row", "struct_concat", "struct_contains",
        "struct_extract", "struct_extract_at", "struct_has", "struct_indexof", "struct_insert",
        "struct_keys", "struct_pack", "struct_position", "struct_update", "struct_values",
        "switch", "union_extract", "union_tag", "union_value",
    ),
    "JSON and VARIANT values": (
        "array_to_json", "from_json", "from_json_strict", "json", "json_array",
        "json_array_length", "json_contains", "json_deserialize_sql", "json_exists",
        "json_extract", "json_extract_path", "json_extract_path_text", "json_extract_string",
        "json_keys", "json_merge_patch", "json_object", "json_pretty", "json_quote",
        "json_serialize_sql",  # parses SQL text to JSON; it does not bind or run it
        "json_structure", "json_transform", "json_transform_strict", "json_type", "json_valid",
        "json_value", "row_to_json", "to_json", "variant_bytes_to_variant", "variant_extract",
        "variant_normalize", "variant_to_parquet_variant", "variant_typeof",
    ),
    "types, enums and other value functions": (
        "alias", "can_cast_implicitly", "cast_to_type", "combine", "constant_or_null",
        "create_sort_key", "enum_code", "enum_first", "enum_last", "enum_range",
        "enum_range_boundary", "error", "finalize", "get_type", "is_histogram_other_bin",
        "replace_type", "typeof",
    ),
    "geometry (DuckDB core GEOMETRY type, no extension)": (
        "st_asbinary", "st_astext", "st_aswkb", "st_aswkt", "st_crs", "st_geomfromwkb",
        "st_intersects_extent", "st_setcrs",
    ),
    "ICU collations": (
        "icu_sort_key",
        "icu_collate_af", "icu_collate_am", "icu_collate_ar", "icu_collate_ar_sa",
        "icu_collate_as", "icu_collate_az", "icu_collate_be", "icu_collate_bg", "icu_collate_bn",
        "icu_collate_bo", "icu_collate_br", "icu_collate_bs", "icu_collate_ca",
        "icu_collate_ceb", "icu_collate_chr", "icu_collate_cs", "icu_collate_cy",
        "icu_collate_da", "icu_collate_de", "icu_collate_de_at", "icu_collate_dsb",
        "icu_collate_dz", "icu_collate_ee", "icu_collate_el", "icu_collate_en",
        "icu_collate_en_us", "icu_collate_eo", "icu_collate_es", "icu_collate_et",
        "icu_collate_fa", "icu_collate_fa_af", "icu_collate_ff", "icu_collate_fi",
        "icu_collate_fil", "icu_collate_fo", "icu_collate_fr", "icu_collate_fr_ca",
        "icu_collate_fy", "icu_collate_ga", "icu_collate_gl", "icu_collate_gu",
        "icu_collate_ha", "icu_collate_haw", "icu_collate_he", "icu_collate_he_il",
        "icu_collate_hi", "icu_collate_hr", "icu_collate_hsb", "icu_collate_hu",
        "icu_collate_hy", "icu_collate_id", "icu_collate_id_id", "icu_collate_ig",
        "icu_collate_is", "icu_collate_it", "icu_collate_ja", "icu_collate_ka",
        "icu_collate_kk", "icu_collate_kl", "icu_collate_km", "icu_collate_kn",
        "icu_collate_ko", "icu_collate_kok", "icu_collate_ku", "icu_collate_ky",
        "icu_collate_lb", "icu_collate_lij", "icu_collate_lkt", "icu_collate_ln",
        "icu_collate_lo", "icu_collate_lt", "icu_collate_lv", "icu_collate_mk",
        "icu_collate_ml", "icu_collate_mn", "icu_collate_mr", "icu_collate_ms",
        "icu_collate_mt", "icu_collate_my", "icu_collate_nb", "icu_collate_nb_no",
        "icu_collate_ne", "icu_collate_nl", "icu_collate_nn", "icu_collate_noaccent",
        "icu_collate_nso", "icu_collate_om", "icu_collate_or", "icu_collate_pa",
        "icu_collate_pa_in", "icu_collate_pl", "icu_collate_ps", "icu_collate_pt",
        "icu_collate_ro", "icu_collate_ru", "icu_collate_sa", "icu_collate_se",
        "icu_collate_si", "icu_collate_sk", "icu_collate_sl", "icu_collate_smn",
        "icu_collate_sq", "icu_collate_sr", "icu_collate_sr_ba", "icu_collate_sr_me",
        "icu_collate_sr_rs", "icu_collate_st", "icu_collate_sv", "icu_collate_sw",
        "icu_collate_ta", "icu_collate_te", "icu_collate_th", "icu_collate_tk",
        "icu_collate_tn", "icu_collate_to", "icu_collate_tr", "icu_collate_ug",
        "icu_collate_uk", "icu_collate_ur", "icu_collate_uz", "icu_collate_vi",
        "icu_collate_wae", "icu_collate_wo", "icu_collate_xh", "icu_collate_yi",
        "icu_collate_yo", "icu_collate_yue", "icu_collate_yue_cn", "icu_collate_zh",
        "icu_collate_zh_cn", "icu_collate_zh_hk", "icu_collate_zh_mo", "icu_collate_zh_sg",
        "icu_collate_zh_tw", "icu_collate_zu",
    ),
}

# Names refused with a known reason (DuckDB 1.5 built-ins and the usual suspects from extensions).
# Only explain_refusal() reads this; a name absent from ALLOWED_FUNCTION_NAMES is refused regardless.
_REFUSED_NAMES: dict[str, str] = {
    **dict.fromkeys(
        ("glob", "sniff_csv", "arrow_scan", "arrow_scan_dumb", "pandas_scan", "seq_scan",
         "delta_scan", "postgres_scan", "postgres_query", "sqlite_scan", "mysql_scan",
         "add_parquet_key", "parquet_scan"),
        _FILES,
    ),
    **dict.fromkeys(("getenv",), _ENV),
    **dict.fromkeys(("current_setting", "getvariable", "set_config", "duckdb_settings"), _SETTINGS),
    **dict.fromkeys(("which_secret", "duckdb_secrets"), _SECRETS),
    **dict.fromkeys(
        ("current_database", "current_schema", "current_schemas", "current_catalog",
         "in_search_path", "get_block_size", "make_type", "functions", "collations",
         "database_list", "database_size", "show", "show_databases", "show_tables",
         "show_tables_expanded", "table_info", "storage_info", "metadata_info", "summary"),
        _CATALOG,
    ),
    **dict.fromkeys(
        ("current_user", "current_role", "session_user", "user", "current_query",
         "current_query_id", "current_connection_id", "current_transaction_id", "txid_current"),
        _IDENTITY,
    ),
    **dict.fromkeys(("version", "platform", "user_agent", "extension_versions"), _ENGINE),
    **dict.fromkeys(
        ("nextval", "currval", "setval", "setseed", "write_log", "load", "install", "attach",
         "detach", "checkpoint", "force_checkpoint", "import_database", "copy_database",
         "truncate_duckdb_logs", "all_profiling_output"),
        _STATE,
    ),
    **dict.fromkeys(
        ("query", "query_table", "sql_auto_complete", "json_execute_serialized_sql",
         "json_serialize_plan"),
        _SQL,
    ),
    **dict.fromkeys(
        ("json_each", "json_tree", "repeat_row", "test_all_types", "test_vector_types",
         "icu_calendar_names", "histogram_values", "python_map_function"),
        _TABLE,
    ),
    **dict.fromkeys(
        ("col_description", "obj_description", "shobj_description", "format_pg_type",
         "format_type", "map_to_pg_oid", "inet_client_addr", "inet_client_port",
         "inet_server_addr", "inet_server_port"),
        _PG,
    ),
    **dict.fromkeys(("sleep_ms", "pg_sleep"), _SLEEP),
    "stats": _STATS,
    **dict.fromkeys(("vector_type", "parse_duckdb_log_message"), _INTERNAL),
}

# Prefix rules for explain_refusal(), tried in order after _REFUSED_NAMES.
_REFUSED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("read_", _FILES), ("parquet_", _FILES), ("iceberg_", _FILES), ("delta_", _FILES),
    ("postgres_", _FILES), ("sqlite_", _FILES), ("mysql_", _FILES), ("http", _FILES),
    ("s3_", _FILES), ("azure_", _FILES), ("ducklake_", _FILES),
    ("duckdb_", _CATALOG), ("pragma_", _CATALOG), ("current_", _IDENTITY),
    ("pg_", _PG), ("has_", _PG),
    ("enable_", _STATE), ("disable_", _STATE), ("export_", _STATE), ("verify_", _STATE),
    ("__internal", _INTERNAL),
)

# Functions DuckDB also resolves when written without parentheses (``select user``).  sqlglot parses
# ``user``, ``current_role`` and ``current_schema`` as exp.Column, so this pass never sees them; the
# column-resolution pass should refuse an unqualified column of one of these names that no table in
# scope provides.  (current_date is the only safe one DuckDB accepts this way; it is not listed.)
NILADIC_FUNCTION_IDENTIFIERS: frozenset[str] = frozenset(
    {"current_catalog", "current_role", "current_schema", "current_user", "session_user", "user"}
)

# DuckDB's spelling of typed classes whose first sqlglot name differs (messages only).
_DUCKDB_SPELLING: dict[str, str] = {
    "ApproxDistinct": "approx_count_distinct", "Array": "list_value",
    "ArrayContainsAll": "array_has_all", "ArrayMax": "list_max", "ArrayMin": "list_min",
    "ArrayOverlaps": "list_has_any", "ArraySize": "array_length", "BitwiseAndAgg": "bit_and",
    "BitwiseOrAgg": "bit_or", "BitwiseXorAgg": "bit_xor",
    "CosineDistance": "list_cosine_distance", "CurrentVersion": "version",
    "CurrentTimestampLTZ": "current_timestamp_ltz", "DateBin": "time_bucket",
    "DateFromParts": "make_date", "DayOfWeekIso": "isodow", "EuclideanDistance": "list_distance",
    "Explode": "unnest", "GroupConcat": "string_agg", "JSONArrayAgg": "json_arrayagg",
    "JSONExtractScalar": "json_extract_string", "LogicalAnd": "bool_and",
    "LogicalOr": "bool_or", "MLForecast": "ml.forecast", "MLTranslate": "ml.translate",
    "Pad": "lpad", "ParseJSON": "json", "PercentileCont": "quantile_cont",
    "PercentileDisc": "quantile_disc", "Rand": "random", "RegexpLike": "regexp_matches",
    "RegexpSplit": "str_split_regex", "SHA": "sha1", "SHA2": "sha256", "StrPosition": "strpos",
    "StrToTime": "strptime", "Struct": "struct_pack", "TimeFromParts": "make_time",
    "TimeToStr": "strftime", "TimeToUnix": "epoch", "TimestampFromParts": "make_timestamp",
    "TimestampTrunc": "date_trunc", "Transform": "list_transform", "UnixToTime": "to_timestamp",
    "VariancePop": "var_pop",
}


# --------------------------------------------------------------------------------------------------
# Resolution of the literals above.
# --------------------------------------------------------------------------------------------------


def _resolve(groups: dict[str, tuple[str, ...]]) -> tuple[frozenset[type], frozenset[str]]:
    found: set[type] = set()
    missing: set[str] = set()
    for names in groups.values():
        for name in names:
            cls = getattr(exp, name, None)
            if isinstance(cls, type) and issubclass(cls, exp.Func) and cls is not exp.Anonymous:
                found.add(cls)
            else:
                missing.add(name)
    return frozenset(found), frozenset(missing)


ALLOWED_FUNCTION_CLASSES: frozenset[type]
_missing_allowed: frozenset[str]
ALLOWED_FUNCTION_CLASSES, _missing_allowed = _resolve(_ALLOWED_CLASS_GROUPS)

_refused_classes, _missing_refused = _resolve(_REFUSED_CLASS_GROUPS)

#: Class names listed in this module that the installed sqlglot does not have (empty on 30.30).
MISSING_FUNCTION_CLASSES: frozenset[str] = _missing_allowed | _missing_refused

ALLOWED_FUNCTION_NAMES: frozenset[str] = frozenset(
    name for names in _ALLOWED_NAME_GROUPS.values() for name in names
)

# The allow-list by family ("strings", "dates and times", ...): what a catalog tells a client it may call
# (Flight SQL's SqlInfo function lists). Read only.
ALLOWED_FUNCTION_FAMILIES: "MappingProxyType[str, tuple[str, ...]]" = MappingProxyType(dict(_ALLOWED_NAME_GROUPS))

_REFUSED_CLASS_REASON: dict[type, str] = {
    cls: reason
    for reason, names in _REFUSED_CLASS_GROUPS.items()
    for name in names
    if (cls := getattr(exp, name, None)) in _refused_classes
}


# --------------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------------


def is_allowed(node: exp.Expression) -> bool:
    """True if the function node may appear in a Quanta query (two O(1) set lookups)."""
    cls = type(node)
    if cls is exp.Anonymous:
        # node.name copes with a quoted name ("upper"(x) parses with an Identifier as `this`)
        return node.name.lower() in ALLOWED_FUNCTION_NAMES
    return cls in ALLOWED_FUNCTION_CLASSES


_COLLAPSE_LETTERS = re.compile(r"(?<![A-Za-z0-9])((?:[A-Za-z]_)+[A-Za-z])(?=_|$)")


@lru_cache(maxsize=None)
def _typed_name(cls: type) -> str:
    spelled = _DUCKDB_SPELLING.get(cls.__name__)
    if spelled:
        return spelled
    names = cls.sql_names() if hasattr(cls, "sql_names") else ()
    name = names[0] if names else cls.__name__
    # sqlglot derives names like J_S_O_N_ARRAY from JSONArray: collapse the spelled-out letters.
    return _COLLAPSE_LETTERS.sub(lambda m: m.group(1).replace("_", ""), name).lower()


def function_name(node: exp.Expression, sql: str | None = None) -> str:
    """The user-facing lower-case name of a function node.

    For ``exp.Anonymous`` it is the called name.  For typed nodes it is DuckDB's spelling where known,
    else sqlglot's first name for the class.  Pass the original ``sql`` to get exactly what the user
    typed (sqlglot records the position of the function-name token in ``node.meta``).
    """
    if type(node) is exp.Anonymous:
        return str(node.name).lower()
    if sql is not None:
        start, end = node.meta.get("start"), node.meta.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start <= end < len(sql):
            typed = sql[start : end + 1].strip().strip('"`').lower()
            if typed and re.fullmatch(r"[a-z_][a-z0-9_$]*", typed):
                return typed
    return _typed_name(type(node))


def _name_reason(name: str) -> str | None:
    reason = _REFUSED_NAMES.get(name)
    if reason is None:
        for prefix, prefix_reason in _REFUSED_PREFIXES:
            if name.startswith(prefix):
                return prefix_reason
    return reason


def explain_refusal(node: exp.Expression, sql: str | None = None) -> str:
    """A message saying why a refused function node is refused."""
    name = function_name(node, sql)
    if type(node) is exp.Anonymous:
        reason = _name_reason(name)
    else:
        reason = _REFUSED_CLASS_REASON.get(type(node)) or _name_reason(name)
    if reason:
        return f"function {name}() is not allowed in Quanta queries ({reason})"
    return f"function {name}() is not in Quanta's allow-list of SQL functions"
