"""The issue resource's JSON shapes (``/api/v1/issues``): what a client sends (``IssueBody``)
and gets back (``IssueOut``), and the issue entity turned into the latter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from herald.issues.domain import (
    MAX_BODY_LENGTH,
    MAX_PREHEADER_LENGTH,
    MAX_TARGET_LISTS,
    MAX_TITLE_LENGTH,
    Issue,
    IssueContent,
    IssueStatus,
    TargetChoice,
)

LISTS_HELP = (
    "The slugs of the lists the issue goes to (their confirmed members, once each); "
    "an issue without chosen lists goes to the `default` list."
)
SEGMENT_HELP = "A saved segment narrowing the lists' readers; null: everyone on the lists."
PUBLIC_HELP = (
    "Once sent, shown in the public archive and feeds of each public list it goes to "
    "(`/archive/{list}`), rendered for an anonymous reader. Left out: false for a new issue, "
    "unchanged for a replaced one."
)

TRACKING_HELP = (
    "Opens (an invisible image) and clicks (links through Herald) are counted per reader; off "
    "by default, fixed once the issue is published, and never for readers who turned it off "
    "in their preferences. Left out: false for a new issue, unchanged for a replaced one."
)


class IssueOut(BaseModel):
    id: uuid.UUID
    title: str
    status: IssueStatus
    lists: list[str] = Field(description=LISTS_HELP)
    segment_id: uuid.UUID | None = Field(description=SEGMENT_HELP)
    preheader: str
    markdown: str | None
    html: str
    text: str
    scheduled_at: datetime | None
    published_at: datetime | None
    completed_at: datetime | None
    recipients: int | None = Field(description="Set once its fan-out has queued everyone.")
    created_at: datetime
    updated_at: datetime
    publish_error: str | None
    fanout_error: str | None
    public: bool = Field(description=PUBLIC_HELP)
    archive_slug: str | None = Field(
        description="Its address in each public list's archive, `/archive/{list}/{archive_slug}`: "
        "given when a public issue is published, never changed afterwards."
    )
    tracking: bool = Field(description=TRACKING_HELP)


class IssueBody(BaseModel):
    """An issue's content: ``markdown`` wins when given; otherwise ``html_content`` and/or
    ``text_content``, the missing one derived from the other. Its target: ``lists`` and
    ``segment_id``; left out, a new issue goes to the default list and a replaced one keeps
    its target (a published issue's target is frozen)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=MAX_TITLE_LENGTH * 4)
    markdown: str | None = Field(default=None, max_length=MAX_BODY_LENGTH)
    html_content: str | None = Field(default=None, max_length=MAX_BODY_LENGTH)
    text_content: str | None = Field(default=None, max_length=MAX_BODY_LENGTH)
    preheader: str | None = Field(default=None, max_length=MAX_PREHEADER_LENGTH * 4)
    lists: list[Annotated[str, Field(max_length=60)]] | None = Field(
        default=None, max_length=MAX_TARGET_LISTS, description=LISTS_HELP
    )
    segment_id: uuid.UUID | None = Field(default=None, description=SEGMENT_HELP)
    public: StrictBool | None = Field(default=None, description=PUBLIC_HELP)
    tracking: StrictBool | None = Field(default=None, description=TRACKING_HELP)

    def target(self) -> TargetChoice | None:
        """The target asked for; None when the body names neither field."""
        if self.lists is not None:
            return TargetChoice.parse(self.lists, self.segment_id)
        if "segment_id" in self.model_fields_set:  # the lists as they are, a new segment
            return TargetChoice.segment_only(self.segment_id)
        return None

    def content(self) -> IssueContent:
        return IssueContent.parse(
            title=self.title,
            markdown=self.markdown,
            html_content=self.html_content,
            text_content=self.text_content,
            preheader=self.preheader,
            public=self.public,
        )


def issue_json(issue: Issue) -> IssueOut:
    return IssueOut(
        id=issue.id,
        title=issue.title,
        status=issue.status,
        lists=list(issue.target.slugs),
        segment_id=issue.target.segment.id if issue.target.segment else None,
        preheader=issue.preheader,
        markdown=issue.markdown,
        html=issue.html,
        text=issue.text,
        scheduled_at=issue.scheduled_at,
        published_at=issue.published_at,
        completed_at=issue.completed_at,
        recipients=issue.recipients,
        created_at=issue.created_at,
        updated_at=issue.updated_at,
        publish_error=issue.publish_error,
        fanout_error=issue.fanout_error,
        public=issue.public,
        archive_slug=issue.archive_slug,
        tracking=issue.tracking,
    )
