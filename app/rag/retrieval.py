"""Retrieval for replies: the room's files, a private chat owner's documents, earlier turns.

In a shared room only the room's own files are searched, never a member's private
documents. Each room's messages are also embedded (in the background, bounded) into the
room's namespace as `kind=message`, so turns that fell out of the context can be recalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from app.assistant.policy import Retriever, Searchable
from app.config import VectorSettings
from app.models import Message, Room, Source, utcnow
from app.rag.embeddings import Embedder
from app.tasks import cancel_and_wait
from storage.files import FileStore
from storage.messages import MessageStore
from storage.mongo import Mongo
from storage.vectors import VectorItem, VectorMatch, VectorStore

log = logging.getLogger(__name__)

RETRIEVE_TIMEOUT = 10.0  # a slow vector store must not hold a reply back for long
RECALL_QUEUE = 256  # rooms waiting to have their messages embedded
RECALL_BATCH = 32
# Seconds a room's embedding waits after it was asked for: a conversation's replies come
# seconds apart, and its turns are embedded in one pass between them, not at every
# question while the next one is being answered (recall only searches older turns).
RECALL_DELAY = 2.0
MESSAGE_CHARS = 2000  # of a message embedded and kept for recall
RECALLED_CHARS = 1000  # of a recalled message put in the context


class RecallIndexer:
    """Embeds rooms' finished messages after a per-room watermark, on one background task."""

    def __init__(
        self, mongo: Mongo, messages: MessageStore, vectors: VectorStore, embedder: Embedder
    ) -> None:
        self._marks = mongo.collection("recall_marks")
        self._messages = messages
        self._vectors = vectors
        self._embedder = embedder
        self._queue: asyncio.Queue[tuple[str, float]] = asyncio.Queue(RECALL_QUEUE)
        self._pending: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task."""
        self._task = asyncio.create_task(self._work(), name="recall-indexer")

    async def close(self) -> None:
        """Stop the background task (unindexed messages are picked up next time)."""
        await cancel_and_wait(self._task)
        self._task = None

    def request(self, room_id: str, upto_seq: int) -> None:
        """Embed the room's messages up to `upto_seq`; dropped when the queue is full."""
        if room_id in self._pending:
            self._pending[room_id] = max(self._pending[room_id], upto_seq)
            return
        try:
            self._queue.put_nowait((room_id, time.monotonic() + RECALL_DELAY))
        except asyncio.QueueFull:
            return  # the watermark keeps the work; the room's next question catches up
        self._pending[room_id] = upto_seq

    async def forget(self, room_id: str) -> None:
        """Drop a deleted room's watermark (its vectors go with the room's namespace)."""
        await self._marks.delete_one({"_id": room_id})

    async def _work(self) -> None:
        while True:
            room_id, due = await self._queue.get()
            await asyncio.sleep(due - time.monotonic())  # asked in order: due in order
            upto = self._pending.pop(room_id, 0)
            try:
                await self.index(room_id, upto)
            except Exception:
                log.warning("could not embed messages of room %s", room_id, exc_info=True)

    async def index(self, room_id: str, upto_seq: int) -> None:
        """Embed the finished messages after the watermark, up to `upto_seq`."""
        mark = await self._marks.find_one({"_id": room_id})
        after = int(mark["seq"]) if mark else 0
        while after < upto_seq:
            page = await self._messages.page(room_id, after_seq=after, limit=RECALL_BATCH)
            page = [m for m in page if m.seq <= upto_seq]
            done: list[Message] = []
            for message in page:
                if message.status == "streaming":
                    break  # wait until it is final; later ones wait behind it
                done.append(message)
            if not done:
                return
            await self._embed(room_id, done)
            after = done[-1].seq
            await self._marks.update_one(
                {"_id": room_id}, {"$max": {"seq": after}, "$set": {"updated_at": utcnow()}},
                upsert=True,
            )
            if len(done) < len(page) or len(page) < RECALL_BATCH:
                return

    async def _embed(self, room_id: str, messages: list[Message]) -> None:
        usable = [m for m in messages if m.role in ("user", "assistant") and m.content.strip()
                  and m.status == "complete"]
        if not usable:
            return
        texts = [m.content[:MESSAGE_CHARS] for m in usable]
        values = await self._embedder.embed(texts)
        items = [
            VectorItem(f"msg:{m.message_id}", vector, {
                "kind": "message", "chat_id": room_id, "message_id": m.message_id,
                "seq": m.seq, "role": m.role, "text": text,
            })
            for m, text, vector in zip(usable, texts, values, strict=True)
        ]
        await self._vectors.upsert(f"chat:{room_id}", items)


class RagRetriever(Retriever):
    """The engine's retriever: sources and a context block for a question."""

    def __init__(
        self, settings: VectorSettings, files: FileStore, vectors: VectorStore,
        embedder: Embedder, recall: RecallIndexer,
    ) -> None:
        self._settings = settings
        self._files = files
        self._vectors = vectors
        self.embedder = embedder
        self.recall = recall

    async def searchable(self, room: Room, asker_id: str | None) -> Searchable | None:
        return await self._searchable(room, asker_id)

    async def retrieve(
        self, room: Room, question: Message, *, recall: bool = True,
        searchable: Searchable | None = None,
    ) -> tuple[list[Source], str]:
        """Sources and context text; nothing (never an error) when retrieval fails."""
        self.recall.request(room.room_id, question.seq)
        if searchable is not None and not any(searchable[:2]) and not recall:
            return [], ""  # nothing to search, and it is known already: no task, no call
        try:
            return await asyncio.wait_for(
                self._retrieve(room, question, recall, searchable), RETRIEVE_TIMEOUT
            )
        except Exception:
            log.warning("retrieval failed in room %s", room.room_id, exc_info=True)
            return [], ""

    async def search(self, room: Room, asker_id: str, query: str, top_k: int) -> list[Source]:
        """Chunks of the room's files (and the asker's documents in their private chat).

        The `search_documents` tool: the same isolation as automatic retrieval.
        """
        text = query.strip()
        if not text:
            return []
        has_files, has_docs, private = await self._searchable(room, asker_id)
        if not (has_files or has_docs):
            return []
        vector = (await self.embedder.embed([text]))[0]
        return await self._document_sources(
            room, asker_id if private else None, vector, top_k, has_files, has_docs
        )

    async def _searchable(self, room: Room, asker: str | None) -> Searchable:
        """(room has ready files, asker has ready documents here, this is their private chat)."""
        # A member's private documents only ever serve their own one-member chat.
        private = (len(room.members) == 1 and room.visibility == "private"
                   and asker is not None and room.member(asker) is not None)
        has_files, has_docs = await asyncio.gather(
            self._files.any_ready(chat_id=room.room_id),
            self._files.any_ready(owner_id=asker) if private else _false(),
        )
        return has_files, has_docs, private

    async def _document_sources(
        self, room: Room, asker: str | None, vector: list[float], top_k: int,
        has_files: bool, has_docs: bool,
    ) -> list[Source]:
        searches = [
            self._vectors.query(f"chat:{room.room_id}", vector, top_k, {"kind": "file"})
            if has_files else _none(),
            self._vectors.query(f"user:{asker}", vector, top_k, {"kind": "document"})
            if has_docs and asker is not None else _none(),
        ]
        file_hits, doc_hits = await asyncio.gather(*searches)
        floor = self._settings.min_score
        hits = sorted((h for h in file_hits + doc_hits if h.score >= floor),
                      key=lambda h: h.score, reverse=True)[:top_k]
        # Drop chunks of documents deleted since (their vectors may be going right now).
        live = await self._files.ready_ids(list({str(h.metadata["document_id"]) for h in hits}))
        return [_source(h) for h in hits if h.metadata["document_id"] in live]

    async def _retrieve(
        self, room: Room, question: Message, overflow: bool, searchable: Searchable | None
    ) -> tuple[list[Source], str]:
        text = question.content.strip()
        asker = question.author.user_id if question.author else None
        if not text:
            return [], ""
        recall_upto = question.seq - self._settings.recall_skip_recent
        recall = overflow and self._settings.recall_top_k > 0 and recall_upto >= 1
        has_files, has_docs, private = searchable or await self._searchable(room, asker)
        if not (has_files or has_docs or recall):
            return [], ""  # nothing to search: no embedding call
        vector = (await self.embedder.embed([text]))[0]
        sources, message_hits = await asyncio.gather(
            self._document_sources(
                room, asker if private else None, vector, self._settings.top_k,
                has_files, has_docs,
            ),
            self._vectors.query(
                f"chat:{room.room_id}", vector,
                self._settings.recall_top_k + self._settings.recall_skip_recent,
                {"kind": "message"},
            ) if recall else _none(),
        )
        floor = self._settings.min_score
        recalled = [
            h for h in message_hits
            if h.score >= floor and _int(h.metadata.get("seq")) <= recall_upto
        ][: self._settings.recall_top_k]
        recalled.sort(key=lambda h: _int(h.metadata.get("seq")))
        return sources, context_text(sources, recalled)


    async def retrieve_documents(self, user_id: str, text: str) -> tuple[list[Source], str]:
        """Sources and context from one user's documents, for a question asked outside rooms.

        The same search as a private chat's (top_k, min_score); nothing when it fails.
        """
        text = text.strip()
        try:
            if not text or not await self._files.any_ready(owner_id=user_id):
                return [], ""  # nothing to search: no embedding call
            return await asyncio.wait_for(self._documents(user_id, text), RETRIEVE_TIMEOUT)
        except Exception:
            log.warning("retrieval failed for user %s", user_id, exc_info=True)
            return [], ""

    async def _documents(self, user_id: str, text: str) -> tuple[list[Source], str]:
        vector = (await self.embedder.embed([text]))[0]
        hits = await self._vectors.query(
            f"user:{user_id}", vector, self._settings.top_k, {"kind": "document"}
        )
        hits = [h for h in hits if h.score >= self._settings.min_score]
        live = await self._files.ready_ids(list({str(h.metadata["document_id"]) for h in hits}))
        sources = [_source(h) for h in hits if h.metadata["document_id"] in live]
        return sources, context_text(sources, [])


def _source(hit: VectorMatch) -> Source:
    meta = hit.metadata
    return Source(
        document_id=str(meta["document_id"]), filename=str(meta.get("filename", "")),
        chunk_index=_int(meta.get("chunk_index")), score=round(hit.score, 4),
        snippet=str(meta.get("text", "")),
    )


def context_text(sources: list[Source], recalled: list[VectorMatch]) -> str:
    """The block added to the system prompt: numbered excerpts, then recalled turns."""
    parts: list[str] = []
    if sources:
        parts.append(
            "Excerpts from files the user shared. Use them when they help and cite them "
            "by number, e.g. [1]:"
        )
        for n, source in enumerate(sources, start=1):
            parts.append(
                f"[{n}] {source.filename} (document_id {source.document_id}, "
                f"chunk {source.chunk_index}):\n{source.snippet}"
            )
    if recalled:
        lines = [
            f"- {hit.metadata.get('role', 'user')} (message {_int(hit.metadata.get('seq'))}): "
            f"{str(hit.metadata.get('text', ''))[:RECALLED_CHARS]}"
            for hit in recalled
        ]
        parts.append("Earlier in this chat (recalled):\n" + "\n".join(lines))
    return "\n\n".join(parts)


def _int(value: object) -> int:
    if isinstance(value, int | float):
        return int(value)
    with contextlib.suppress(TypeError, ValueError):
        return int(str(value))
    return 0


async def _false() -> bool:
    return False


async def _none() -> list[VectorMatch]:
    return []
