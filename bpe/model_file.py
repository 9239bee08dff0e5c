"""SentencePiece `.model` files: the ModelProto message, read and written by our own code.

Only the fields a BPE tokenizer needs are named here (the schema is sentencepiece_model.proto);
unknown fields are skipped on read. A model is pieces (string, score, type) plus two specs:
TrainerSpec (how it was trained: byte_fallback, special ids, ...) and NormalizerSpec
(how text is normalized before encoding: dummy prefix, whitespace handling).
"""
from dataclasses import dataclass, field

from files import protobuf as pb

# ModelProto.SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {NORMAL: "NORMAL", UNKNOWN: "UNKNOWN", CONTROL: "CONTROL",
              USER_DEFINED: "USER_DEFINED", UNUSED: "UNUSED", BYTE: "BYTE"}
MODEL_TYPES = {1: "UNIGRAM", 2: "BPE", 3: "WORD", 4: "CHAR"}

# field number -> (name, kind, default); kinds: str, bytes, int, bool, float, strs (repeated str)
TRAINER_FIELDS = {
    1: ("input", "strs", []), 2: ("model_prefix", "str", ""), 3: ("model_type", "int", 1),
    4: ("vocab_size", "int", 8000), 7: ("input_format", "str", ""),
    10: ("character_coverage", "float", 0.9995), 11: ("input_sentence_size", "int", 0),
    18: ("max_sentence_length", "int", 4192), 20: ("max_sentencepiece_length", "int", 16),
    21: ("split_by_unicode_script", "bool", True), 22: ("split_by_whitespace", "bool", True),
    23: ("split_by_number", "bool", True), 24: ("treat_whitespace_as_suffix", "bool", False),
    25: ("split_digits", "bool", False), 26: ("allow_whitespace_only_pieces", "bool", False),
    30: ("control_symbols", "strs", []), 31: ("user_defined_symbols", "strs", []),
    35: ("byte_fallback", "bool", False), 40: ("unk_id", "int", 0), 41: ("bos_id", "int", 1),
    42: ("eos_id", "int", 2), 43: ("pad_id", "int", -1), 44: ("unk_surface", "str", " \u2047 "),
    45: ("unk_piece", "str", "<unk>"), 46: ("bos_piece", "str", "<s>"),
    47: ("eos_piece", "str", "</s>"), 48: ("pad_piece", "str", "<pad>"),
}
NORMALIZER_FIELDS = {
    1: ("name", "str", ""), 2: ("precompiled_charsmap", "bytes", b""),
    3: ("add_dummy_prefix", "bool", True), 4: ("remove_extra_whitespaces", "bool", True),
    5: ("escape_whitespaces", "bool", True), 6: ("normalization_rule_tsv", "str", ""),
}


class ModelFileError(ValueError):
    """Raised when a file is not a readable tokenizer model; `option` names the parameter a chosen value
    came in (the command line prints it as its flag), None for the file's own problems."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


@dataclass
class ModelProto:
    """The contents of a `.model` file: parallel lists of pieces, scores and types, plus the specs."""
    pieces: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    trainer: dict = field(default_factory=lambda: _defaults(TRAINER_FIELDS))
    normalizer: dict = field(default_factory=lambda: _defaults(NORMALIZER_FIELDS))

    def add_piece(self, piece: str, score: float = 0.0, typ: int = NORMAL) -> None:
        """Append one piece (the next id) with its score and type."""
        self.pieces.append(piece)
        self.scores.append(score)
        self.types.append(typ)

    def to_bytes(self) -> bytes:
        """Serialize to the protobuf bytes of a `.model` file."""
        out = bytearray()
        for piece, score, typ in zip(self.pieces, self.scores, self.types):
            body = pb.field_bytes(1, piece.encode()) + pb.field_float(2, score)
            if typ != NORMAL:
                body += pb.field_varint(3, typ)
            out += pb.field_bytes(1, body)
        out += pb.field_bytes(2, _write_spec(TRAINER_FIELDS, self.trainer))
        out += pb.field_bytes(3, _write_spec(NORMALIZER_FIELDS, self.normalizer))
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "ModelProto":
        """Parse protobuf bytes; raise ModelFileError if they are not a SentencePiece model."""
        model, has_trainer = cls(), False
        try:
            for number, wire, value in pb.iter_fields(data):
                if number == 1 and wire == pb.LEN:
                    model.add_piece(*_read_piece(value))
                elif number == 2 and wire == pb.LEN:
                    model.trainer.update(_read_spec(TRAINER_FIELDS, value))
                    has_trainer = True
                elif number == 3 and wire == pb.LEN:
                    model.normalizer.update(_read_spec(NORMALIZER_FIELDS, value))
        except (pb.ProtobufError, UnicodeDecodeError) as e:
            raise ModelFileError(f"not a SentencePiece model ({e})") from None
        if not model.pieces:
            raise ModelFileError("not a SentencePiece model (no pieces)")
        if not has_trainer:  # spm always writes it, after the pieces: a cut file loses it first
            raise ModelFileError("not a complete SentencePiece model (no trainer spec: truncated?)")
        return model


def _defaults(fields: dict) -> dict:
    return {name: (list(d) if isinstance(d, list) else d) for name, _, d in fields.values()}


def _read_piece(buf: bytes) -> tuple[str, float, int]:
    piece, score, typ = None, 0.0, NORMAL
    for number, wire, value in pb.iter_fields(buf):
        if number == 1 and wire == pb.LEN:
            piece = value.decode("utf-8")
        elif number == 2 and wire == pb.FIXED32:
            score = pb.to_float(value)
        elif number == 3 and wire == pb.VARINT:
            typ = value
    if piece is None or typ not in TYPE_NAMES:
        raise pb.ProtobufError("a piece without text or with an unknown type")
    return piece, score, typ


def _read_spec(fields: dict, buf: bytes) -> dict:
    spec = {}
    for number, wire, value in pb.iter_fields(buf):
        if number not in fields:
            continue
        name, kind, _ = fields[number]
        expected = pb.FIXED32 if kind == "float" else pb.VARINT if kind in ("int", "bool") else pb.LEN
        if wire != expected:
            raise pb.ProtobufError(f"field {name} has wire type {wire}")
        if kind == "strs":
            spec.setdefault(name, []).append(value.decode("utf-8"))
        elif kind == "str":
            spec[name] = value.decode("utf-8")
        elif kind == "bytes":
            spec[name] = bytes(value)
        elif kind == "int":
            spec[name] = pb.to_signed32(value)
        elif kind == "bool":
            spec[name] = bool(value)
        else:
            spec[name] = pb.to_float(value)
    return spec


def _write_spec(fields: dict, spec: dict) -> bytes:
    out = bytearray()
    for number, (name, kind, _) in sorted(fields.items()):
        value = spec.get(name)
        if value is None:
            continue
        if kind == "strs":
            for s in value:
                out += pb.field_bytes(number, s.encode())
        elif kind == "str":
            out += pb.field_bytes(number, value.encode())
        elif kind == "bytes":
            if value:
                out += pb.field_bytes(number, value)
        elif kind in ("int", "bool"):
            out += pb.field_varint(number, int(value))
        else:
            out += pb.field_float(number, value)
    return bytes(out)


def read_model_bytes(path, limit: int = -1) -> bytes:
    """The bytes of a model file (the first `limit` only, if given); ModelFileError naming the file."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError as e:
        raise ModelFileError(f"cannot read model file {path}: {e.strerror or e}") from None


def load_model_proto(path) -> ModelProto:
    """Read a `.model` file; raise ModelFileError naming the file on any problem."""
    data = read_model_bytes(path)
    try:
        return ModelProto.from_bytes(data)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: {e}") from None
