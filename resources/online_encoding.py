"""Online-store encodings: Redis keys of entities, feature values as compact strings, and RESP framing.

Keys are `<prefix>:{<entity>}:<view>:v<version>`. `<entity>` is the canonical typed entity key: each join key
value written `i:<decimal>` (integer dtypes) or `s:<text>` (String) with `%`, `{`, `}` and `|` percent-escaped,
joined by `|`. The braces make it the Redis Cluster hash tag, so all views of one entity share a slot.

Values are strings that decode back to the declared dtype: integers and floats in decimal (floats round-trip),
booleans `1`/`0`, dates as days and datetimes as microseconds since the Unix epoch, lists as JSON arrays of
their encoded elements. Null is the empty string; a String value that is empty or starts with NUL gets one NUL
prepended, so null and `""` stay apart.

A hash holds one field, `v:<fingerprint of the view's feature names and dtypes>`, packing the write order and
then the view's encoded values in schema order, separated by 0x1F (in String values 0x1E is escaped as 0x1E 0x30
and 0x1F as 0x1E 0x31; JSON already escapes both). The order is the event time then the created time, each in
microseconds plus 10^18 written as 19 digits, so comparing the first ORDER_WIDTH bytes of two values as strings
compares (event time, created time) as numbers. A hash or field that is absent means "not found"; a schema change
without a version bump names a different field, so old hashes read as not found rather than misaligned.
"""

import hashlib
import json
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl

from feature_assets.language.feature_view import FeatureView

KEY_SEPARATOR = "|"
ORDER_BIAS = 10**18
ORDER_DIGITS = 19
ORDER_WIDTH = 2 * ORDER_DIGITS
VALUE_SEPARATOR = "\x1f"
VALUE_SEPARATOR_BYTES = VALUE_SEPARATOR.encode()
_VALUE_ESCAPE = "\x1e"
_VALUE_ESCAPE_BYTES = _VALUE_ESCAPE.encode()
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", "|": "%7C"})
_STRING_MARK = "\x00"
_STRING_MARK_BYTES = _STRING_MARK.encode()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

Decoder = Callable[[bytes], object]
ColumnDecoder = Callable[[Sequence[bytes]], list[object]]


def epoch_us(moment: datetime) -> int:
    """Return an aware datetime as microseconds since the Unix epoch."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def is_integer_key(dtype: pl.DataType) -> bool:
    """Return whether join keys of `dtype` are encoded as integers (else they must be String)."""
    return dtype.is_integer()


def key_affixes(prefix: str, view: FeatureView) -> tuple[str, str]:
    """Return the text before and after the entity part of a view's Redis keys."""
    return f"{prefix}:{{", f"}}:{view.name}:v{view.version}"


def encode_key_value(value: int | str) -> str:
    """Return the canonical typed encoding of one join key value (`i:1` for 1, `s:1` for "1")."""
    if isinstance(value, int):
        return f"i:{value}"
    return "s:" + value.translate(_ESCAPES)


def entity_key(values: tuple[int | str, ...]) -> str:
    """Return the canonical entity key of one row's join key values, in the view's join key order."""
    return KEY_SEPARATOR.join(map(encode_key_value, values))


def decode_entity_key(view: FeatureView, entity: str) -> dict[str, int | str]:
    """Return the join key values of a canonical entity key (the inverse of `entity_key`)."""
    values: dict[str, int | str] = {}
    for key, part in zip(view.join_keys, entity.split(KEY_SEPARATOR), strict=True):
        kind, text = part[:2], part[2:]
        values[key] = int(text) if kind == "i:" else urllib.parse.unquote(text)
    return values


def entity_key_expr(view: FeatureView) -> pl.Expr:
    """Return an expression computing the canonical entity key of each row, equal to `entity_key` per row."""
    parts = []
    for key, dtype in view.key_dtypes.items():
        column = pl.col(key)
        if is_integer_key(dtype):
            parts.append(pl.lit("i:") + column.cast(pl.String))
        else:
            escaped = column
            for char in "%{}|":
                escaped = escaped.str.replace_all(char, f"%{ord(char):02X}", literal=True)
            parts.append(pl.lit("s:") + escaped)
    return pl.concat_str(parts, separator=KEY_SEPARATOR)


def redis_key_expr(prefix: str, view: FeatureView) -> pl.Expr:
    """Return an expression computing each row's Redis hash key for `view`."""
    before, after = key_affixes(prefix, view)
    return pl.lit(before) + entity_key_expr(view) + pl.lit(after)


def _encode_nullable(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.List):
        items = expr.list.eval(_encode_nullable(pl.element(), dtype.inner))
        as_json = pl.struct(items.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
        return pl.when(expr.is_null()).then(None).otherwise(as_json)
    if dtype == pl.String:
        needs_mark = (expr == "") | expr.str.starts_with(_STRING_MARK)
        return pl.when(needs_mark).then(pl.lit(_STRING_MARK) + expr).otherwise(expr)
    if dtype == pl.Boolean:
        return expr.cast(pl.UInt8).cast(pl.String)
    if dtype == pl.Date:
        return expr.cast(pl.Int32).cast(pl.String)
    if isinstance(dtype, pl.Datetime):
        return expr.dt.epoch("us").cast(pl.String)
    return expr.cast(pl.String)


def value_expr(column: str, dtype: pl.DataType) -> pl.Expr:
    """Return an expression encoding a feature column of `dtype` as strings (null as the empty string)."""
    return _encode_nullable(pl.col(column), dtype).fill_null("").alias(column)


def values_field(view: FeatureView) -> str:
    """Return the name of the hash field packing the values of `view`, which changes with its features' schema."""
    schema = "|".join(f"{f.name}:{f.dtype}" for f in view.schema)
    return "v:" + hashlib.sha1(schema.encode()).hexdigest()[:12]


def order_threshold(event_us: int) -> bytes:
    """Return the order prefix of `event_us`: orders that compare lower than it have an older event time."""
    return b"%0*d" % (ORDER_DIGITS, event_us + ORDER_BIAS)


def packed_row_expr(view: FeatureView, event_us: str, created_us: str) -> pl.Expr:
    """Return an expression packing each row's order (from µs columns) and encoded values into the field's value."""
    parts = [
        pl.concat_str(
            [(pl.col(column) + ORDER_BIAS).cast(pl.String).str.zfill(ORDER_DIGITS) for column in (event_us, created_us)]
        )
    ]
    for f in view.schema:
        encoded = value_expr(f.name, f.dtype)
        if f.dtype == pl.String:
            encoded = encoded.str.replace_all(_VALUE_ESCAPE, _VALUE_ESCAPE + "0", literal=True).str.replace_all(
                VALUE_SEPARATOR, _VALUE_ESCAPE + "1", literal=True
            )
        parts.append(encoded)
    return pl.concat_str(parts, separator=VALUE_SEPARATOR)


def _unescape(raw: bytes) -> bytes:
    return raw.replace(b"\x1e1", b"\x1f").replace(b"\x1e0", b"\x1e") if _VALUE_ESCAPE_BYTES in raw else raw


def decode_order_timestamp(order: bytes) -> datetime:
    """Return the UTC event time of an order string."""
    return EPOCH + timedelta(microseconds=int(order[:ORDER_DIGITS]) - ORDER_BIAS)


def _decode_string(raw: bytes) -> str:
    text = raw.decode()
    return text[1:] if text[0] == _STRING_MARK else text


def _decode_date(raw: bytes) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + int(raw))


def decode_timestamp(raw: bytes) -> datetime:
    """Return the UTC datetime of microseconds since the epoch written as ASCII digits."""
    return EPOCH + timedelta(microseconds=int(raw))


def _decode_bool(raw: bytes) -> bool:
    return raw == b"1"


def _list_decoder(inner: Decoder) -> Decoder:
    def decode(raw: bytes) -> list[object]:
        return [None if item is None else inner(item.encode()) for item in json.loads(raw)]

    return decode


def decoder(dtype: pl.DataType) -> Decoder:
    """Return the function turning a non-empty encoded value back into a Python value of `dtype`."""
    if isinstance(dtype, pl.List):
        return _list_decoder(decoder(dtype.inner))
    if dtype == pl.String:
        return _decode_string
    if dtype == pl.Boolean:
        return _decode_bool
    if dtype == pl.Date:
        return _decode_date
    if isinstance(dtype, pl.Datetime):
        return decode_timestamp
    if dtype.is_float():
        return float
    return int


def _decode_string_column(raws: Sequence[bytes]) -> list[str]:
    texts = list(map(bytes.decode, raws))
    if _STRING_MARK_BYTES not in b"".join(raws):
        return texts
    return [text[1:] if text[0] == _STRING_MARK else text for text in texts]


def _decode_packed_string_column(raws: Sequence[bytes]) -> list[str]:
    joined = b"".join(raws)
    if _VALUE_ESCAPE_BYTES in joined:
        raws = list(map(_unescape, raws))
    texts = list(map(bytes.decode, raws))
    if _STRING_MARK_BYTES not in joined:
        return texts
    return [text[1:] if text[0] == _STRING_MARK else text for text in texts]


def packed_decoder(dtype: pl.DataType) -> Decoder:
    """Return `decoder(dtype)` for a value taken out of a packed field (String values undo their escapes)."""
    if dtype == pl.String:
        return lambda raw: _decode_string(_unescape(raw))
    return decoder(dtype)


def packed_column_decoder(dtype: pl.DataType) -> ColumnDecoder:
    """Return `column_decoder(dtype)` for values taken out of packed fields (String values undo their escapes)."""
    if dtype == pl.String:
        return _decode_packed_string_column
    return column_decoder(dtype)


def column_decoder(dtype: pl.DataType) -> ColumnDecoder:
    """Return the function decoding a whole column of non-empty encoded values of `dtype` (fast paths in C)."""
    if dtype == pl.String:
        return _decode_string_column
    if dtype == pl.Boolean:
        return lambda raws: list(map(b"1".__eq__, raws))
    if dtype.is_integer() or dtype.is_float():
        convert = float if dtype.is_float() else int
        return lambda raws: list(map(convert, raws))
    decode = decoder(dtype)
    return lambda raws: list(map(decode, raws))


def resp_bulk_expr(*columns: str) -> pl.Expr:
    """Return an expression framing each row's string columns as consecutive RESP bulk strings."""
    parts = []
    for column in columns:
        text = pl.col(column)
        parts += [pl.lit("$"), text.str.len_bytes().cast(pl.String), pl.lit("\r\n"), text, pl.lit("\r\n")]
    return pl.concat_str(parts)


def resp_bulk(data: bytes) -> bytes:
    """Return `data` framed as one RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)
