"""Field descriptors: ``Order.account_id`` names a Record field wherever a key function or field is asked.

    stream.group_by(Order.account_id)            # repartitions by the field, topic named after it
    table.tumbling(60).relative_to_field(Order.created)
    Order.account_id(order) == order.account_id  # a descriptor reads its field, like a key function

Instances keep their values in their own attributes, so ``order.account_id`` is the value as before; the
field's default is ``Order.account_id.default``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

__all__ = ["FieldDescriptor", "install_descriptors", "keep_inherited_defaults"]


class FieldDescriptor:
    """A Record field seen from its class: callable as ``descriptor(record)``, named ``Class.field``."""

    def __init__(self, model: type, field: dataclasses.Field[Any]) -> None:
        self.model = model
        self.field = field.name
        self._field = field
        self.__name__ = self.__qualname__ = f"{model.__name__}.{field.name}"

    @property
    def type(self) -> Any:
        """The field's annotation."""
        return self._field.type

    @property
    def required(self) -> bool:
        """Whether the field has no default."""
        field = self._field
        return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING

    @property
    def default(self) -> Any:
        """The field's default value (a new one from its default factory); None when it is required."""
        if self._field.default is not dataclasses.MISSING:
            return self._field.default
        if self._field.default_factory is not dataclasses.MISSING:
            return self._field.default_factory()
        return None

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        raise AttributeError(f"{type(instance).__name__!r} object has no attribute {self.field!r}")

    def __call__(self, record: Any) -> Any:
        """The field's value in ``record`` (what group_by and relative_to_field call)."""
        return getattr(record, self.field)

    def __repr__(self) -> str:
        return f"<FieldDescriptor {self.__name__}>"


def keep_inherited_defaults(cls: type) -> None:
    """Before ``cls`` becomes a dataclass: a field it declares again keeps the parent's default.

    A dataclass reads a field's default with ``getattr(cls, name)``, which would find the parent's
    descriptor; it finds the parent's default (or none) instead.
    """
    for name in inspect.get_annotations(cls):
        if name in cls.__dict__:
            continue
        inherited = getattr(cls, name, None)
        if not isinstance(inherited, FieldDescriptor):
            continue
        parent = inherited._field
        setattr(cls, name, dataclasses.field(default=parent.default, default_factory=parent.default_factory))


def install_descriptors(cls: type) -> None:
    """Put a `FieldDescriptor` on ``cls`` for each of its dataclass fields."""
    for field in dataclasses.fields(cls):
        setattr(cls, field.name, FieldDescriptor(cls, field))
