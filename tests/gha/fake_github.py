"""An in-memory GitHub repository: pull requests, issues, comments, labels and which
commits belong to which pull request.

The state is plain JSON, shared with `github_script_host.js`: the emulator writes it to
a file before an `actions/github-script` step, the host serves the script's REST calls
from it and writes it back, and the test then reads the new comments here. The records
have the REST API's field names (docs.github.com/rest/issues, /rest/pulls) so that what a
test builds and what a script reads look like GitHub's responses.

Storage, keyed by number as a string (JSON object keys are strings on both sides):
- `issues`: the issue view of every issue and pull request (they share one number space;
  a pull request's has a `pull_request` key, as in GET /repos/{o}/{r}/issues/{n});
- `pulls`: the fields only a pull request has (head, base, merged, merge_commit_sha);
- `comments`: the comments of each issue or pull request, oldest first;
- `commits`: commit sha -> numbers of the pull requests associated with it.
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

__all__ = ["FakeGitHub", "BOT", "MAX_BODY"]

BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}  # the GITHUB_TOKEN's author
MAX_BODY = 65536  # GitHub rejects longer comment/issue bodies with 422 "Validation Failed"
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _user(login: str, type_: str = "User") -> dict:
    return {"login": login, "id": zlib.crc32(login.encode()), "type": type_}


@dataclass
class FakeGitHub:
    """The repository's GitHub state, and helpers to arrange and inspect it in tests."""

    repository: str = "acme/policies"
    issue_records: dict[str, dict] = field(default_factory=dict)
    pull_records: dict[str, dict] = field(default_factory=dict)
    comment_records: dict[str, list[dict]] = field(default_factory=dict)
    labels: list[dict] = field(default_factory=list)
    commits: dict[str, list[int]] = field(default_factory=dict)
    next_number: int = 1
    next_comment_id: int = 1
    clock: int = 0  # seconds after 2024-01-01: every change advances it, so timestamps are ordered

    # ── JSON shared with the node host ──

    def to_json(self) -> dict:
        return copy.deepcopy({
            "repository": self.repository, "issues": self.issue_records, "pulls": self.pull_records,
            "comments": self.comment_records, "labels": self.labels, "commits": self.commits,
            "next_number": self.next_number, "next_comment_id": self.next_comment_id, "clock": self.clock,
        })

    def load_json(self, data: dict) -> None:
        """Replace the state in place (the emulator calls it after a github-script step)."""
        self.repository = data["repository"]
        self.issue_records = data["issues"]
        self.pull_records = data["pulls"]
        self.comment_records = data["comments"]
        self.labels = data["labels"]
        self.commits = data["commits"]
        self.next_number = data["next_number"]
        self.next_comment_id = data["next_comment_id"]
        self.clock = data["clock"]

    @classmethod
    def from_json(cls, data: dict) -> FakeGitHub:
        github = cls()
        github.load_json(copy.deepcopy(data))
        return github

    # ── arranging ──

    def _now(self) -> str:
        self.clock += 1
        return (_EPOCH + timedelta(seconds=self.clock)).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def _html(self) -> str:
        return f"https://github.com/{self.repository}"

    def _new_number(self, number: int | None) -> int:
        number = self.next_number if number is None else number
        if str(number) in self.issue_records:
            raise ValueError(f"#{number} exists already (issues and pull requests share numbers)")
        self.next_number = max(self.next_number, number + 1)
        return number

    def _label(self, name: str) -> dict:
        for label in self.labels:
            if label["name"].lower() == name.lower():
                return {"name": label["name"], "color": label["color"], "description": label["description"]}
        self.labels.append({"name": name, "color": "ededed", "description": None})
        return self._label(name)

    def _issue_record(self, number: int, title: str, body: str, author: str, labels) -> dict:
        now = self._now()
        return {"number": number, "title": title, "body": body, "state": "open", "state_reason": None,
                "locked": False, "labels": [self._label(name) for name in labels],
                "user": _user(author), "created_at": now, "updated_at": now, "closed_at": None,
                "html_url": f"{self._html}/issues/{number}",
                "url": f"https://api.github.com/repos/{self.repository}/issues/{number}"}

    def open_pull_request(self, number: int | None, title: str, head_sha: str, head_ref: str,
                          base_ref: str = "main", author: str = "alice", *, body: str = "",
                          base_sha: str = "0" * 40, labels: tuple[str, ...] = ()) -> dict:
        """An open pull request from `head_ref` (at `head_sha`) into `base_ref`. Its head
        commit is associated with it, as GitHub does for an open pull request."""
        number = self._new_number(number)
        record = self._issue_record(number, title, body, author, labels)
        record["html_url"] = f"{self._html}/pull/{number}"
        record["pull_request"] = {"url": f"https://api.github.com/repos/{self.repository}/pulls/{number}",
                                  "html_url": record["html_url"], "merged_at": None}
        self.issue_records[str(number)] = record
        repo = {"full_name": self.repository, "name": self.repository.split("/")[1]}
        owner = self.repository.split("/")[0]
        self.pull_records[str(number)] = {
            "head": {"ref": head_ref, "sha": head_sha, "label": f"{owner}:{head_ref}", "repo": repo},
            "base": {"ref": base_ref, "sha": base_sha, "label": f"{owner}:{base_ref}", "repo": repo},
            "merged": False, "merged_at": None, "merge_commit_sha": None, "draft": False}
        self.comment_records[str(number)] = []
        self.associate(head_sha, number)
        return self.pull(number)

    def open_issue(self, title: str, body: str = "", *, author: str = "alice",
                   labels: tuple[str, ...] = (), number: int | None = None) -> dict:
        number = self._new_number(number)
        self.issue_records[str(number)] = self._issue_record(number, title, body, author, labels)
        self.comment_records[str(number)] = []
        return self.issue(number)

    def merge(self, number: int, merge_sha: str) -> dict:
        """Merge a pull request: closed, merged, and `merge_sha` associated with it, so
        `listPullRequestsAssociatedWithCommit(merge_sha)` finds it after the push to base."""
        issue, pull = self.issue_records[str(number)], self.pull_records[str(number)]
        now = self._now()
        issue.update(state="closed", closed_at=now, updated_at=now)
        issue["pull_request"]["merged_at"] = now
        pull.update(merged=True, merged_at=now, merge_commit_sha=merge_sha)
        self.associate(merge_sha, number)
        return self.pull(number)

    def associate(self, sha: str, number: int) -> None:
        numbers = self.commits.setdefault(sha, [])
        if number not in numbers:
            numbers.append(number)

    def add_comment(self, number: int, body: str, login: str = "mallory", type: str = "User") -> dict:
        """A comment by someone other than the workflow (a reviewer, or a forger)."""
        if str(number) not in self.issue_records:
            raise KeyError(f"no issue or pull request #{number}")
        if len(body) > MAX_BODY:
            raise ValueError(f"GitHub rejects a body over {MAX_BODY} characters")
        now = self._now()
        comment_id = self.next_comment_id
        self.next_comment_id += 1
        kind = "pull" if "pull_request" in self.issue_records[str(number)] else "issues"
        comment = {"id": comment_id, "body": body, "user": _user(login, type), "created_at": now,
                   "updated_at": now, "author_association": "NONE" if type == "Bot" else "CONTRIBUTOR",
                   "html_url": f"{self._html}/{kind}/{number}#issuecomment-{comment_id}",
                   "issue_url": f"https://api.github.com/repos/{self.repository}/issues/{number}"}
        self.comment_records[str(number)].append(comment)
        return copy.deepcopy(comment)

    # ── inspecting ──

    def comments(self, number: int) -> list[dict]:
        return copy.deepcopy(self.comment_records.get(str(number), []))

    def issue(self, number: int) -> dict:
        record = copy.deepcopy(self.issue_records[str(number)])
        record["comments"] = len(self.comment_records.get(str(number), []))
        return record

    def issues(self, state: str = "open", label: str | None = None, *, include_pulls: bool = False) -> list[dict]:
        """Issues (not pull requests, unless asked) in `state` ('open', 'closed', 'all'),
        optionally only those carrying `label`; newest first, like the API."""
        found = []
        for number in sorted(self.issue_records, key=int, reverse=True):
            record = self.issue_records[number]
            if "pull_request" in record and not include_pulls:
                continue
            if state != "all" and record["state"] != state:
                continue
            if label is not None and label.lower() not in {l["name"].lower() for l in record["labels"]}:
                continue
            found.append(self.issue(int(number)))
        return found

    def pull(self, number: int) -> dict:
        """The pull request as GET /repos/{owner}/{repo}/pulls/{number} returns it."""
        issue, extra = self.issue_records[str(number)], self.pull_records[str(number)]
        view = {key: issue[key] for key in ("number", "title", "body", "state", "locked", "labels", "user",
                                            "created_at", "updated_at", "closed_at", "html_url")}
        view.update(copy.deepcopy(extra))
        view["url"] = issue["pull_request"]["url"]
        view["comments"] = len(self.comment_records.get(str(number), []))
        return copy.deepcopy(view)

    def pull_request_payload(self, number: int, action: str = "opened") -> dict:
        """The event payload of a `pull_request` event for this pull request."""
        pull = self.pull(number)
        return {"action": action, "number": number, "pull_request": pull,
                "repository": self._repository_payload(), "sender": pull["user"]}

    def push_payload(self, sha: str, ref: str = "refs/heads/main", before: str = "0" * 40,
                     pusher: str = "alice") -> dict:
        """The event payload of a `push` event (a merge is a push to the base branch)."""
        return {"ref": ref, "before": before, "after": sha, "created": False, "deleted": False, "forced": False,
                "head_commit": {"id": sha}, "commits": [{"id": sha}], "repository": self._repository_payload(),
                "pusher": {"name": pusher}, "sender": _user(pusher)}

    def _repository_payload(self) -> dict:
        owner, name = self.repository.split("/")
        return {"full_name": self.repository, "name": name, "owner": {"login": owner},
                "default_branch": "main", "html_url": self._html, "private": True}
