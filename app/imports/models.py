"""An uploaded import file, kept in the database between the preview, the dry run and the import.

Several app processes share one database, so the file cannot wait in one
process's memory; its sha256 tells a second upload of the same file.
"""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ImportFile(Base):
    __tablename__ = "import_files"
    __table_args__ = (Index("ix_import_files_sha256", "sha256"),)

    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    # The last time it was imported: with which options and what it created (JSON).
    applied_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    applied_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    options: Mapped[str | None] = mapped_column(Text, default=None)
    result: Mapped[str | None] = mapped_column(Text, default=None)
