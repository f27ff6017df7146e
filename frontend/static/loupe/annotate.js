// What every annotate page shares: the task loop (next -> answer -> next), skip, going back to amend an
// earlier answer, progress, instructions, the zoomable image, the AI suggestion, empty-queue messages and
// the common keys. Each kind's module passes a handler: render(task), collect() -> answer body or null,
// onKey(event) -> true when it used the key, and optionally forget(task), called once the task is answered
// or skipped (the correction page drops its draft there), and ready(), called whenever the page is idle
// again after loading a task or the empty queue (the rating page sends a key queued meanwhile there), and
// failed(message), called when a submit was refused. A handler with `prefetch: true` (the rating page) gets its
// next task leased while the current one is shown (`next/?after=`), and shown the moment the current one is
// answered or skipped, while the answer is still on its way.
// Every text that comes from a model, a caption or a person is inserted with textContent, never as HTML.
import { apiCall, requestId } from "./api.js";

export const el = (id) => document.getElementById(id);

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
const PAN_STEP = 12.5; // percent of the image per arrow press while zoomed

export function isTyping(target) {
  return Boolean(target.closest && target.closest("input, textarea, select"));
}

// "P(yes) 0.12, from logits": a claim's probability and where the labeler read it (logits, logprobs, or
// the answer's text parsed), so a certainty from a parsed "No" is not taken for a calibrated one.
export function pYesText(claim) {
  if (claim.p_yes === null || claim.p_yes === undefined) return "";
  return `P(yes) ${claim.p_yes.toFixed(2)}${claim.source ? `, from ${claim.source}` : ""}`;
}

const isDoubted = (claim) => claim.p_yes !== null && claim.p_yes !== undefined && claim.p_yes <= 0.5;

// Code-point spans [start, end) of the doubted claims: the span the labeler stored, else where the claim's
// text is found after the claim before it (feedback stored before spans were). Offsets count code points,
// as Python does.
function doubtedSpans(text, claims) {
  const cps = Array.from(text);
  const spans = [];
  let at = 0;
  for (const claim of claims) {
    let start;
    let end;
    if (Array.isArray(claim.span)) {
      [start, end] = claim.span;
    } else {
      const found = text.indexOf(claim.claim, cps.slice(0, at).join("").length);
      if (found < 0) continue; // a claim the labeler reworded: it stays in the list below
      start = Array.from(text.slice(0, found)).length;
      end = start + Array.from(claim.claim).length;
    }
    at = Math.max(at, end);
    if (isDoubted(claim) && start >= 0 && end <= cps.length && start < end) spans.push({ start, end, claim });
  }
  spans.sort((a, b) => a.start - b.start);
  return spans;
}

// The answer's text with the claims the labeler doubted (P(yes) <= 0.5) marked by their spans, their P(yes)
// and its source beside them: a copy inside the suggestion box, so the annotator's own marks stay theirs.
function markedAnswer(text, claims) {
  const cps = Array.from(text);
  const out = document.createElement("p");
  out.className = "ai-marked";
  let at = 0;
  for (const { start, end, claim } of doubtedSpans(text, claims)) {
    if (start < at) continue; // overlapping claims: the first one is marked
    out.append(document.createTextNode(cps.slice(at, start).join("")));
    const mark = document.createElement("mark");
    mark.className = "ai-doubted";
    mark.title = pYesText(claim);
    mark.textContent = cps.slice(start, end).join("");
    const p = document.createElement("sup");
    p.textContent = ` ${pYesText(claim)}`;
    out.append(mark, p);
    at = end;
  }
  out.append(document.createTextNode(cps.slice(at).join("")));
  return out;
}

// The answer the labeler scores highest when it judged at least two and one is strictly ahead, else null.
function preferredAnswer(responses, verdicts) {
  const scored = responses
    .filter((response) => verdicts[String(response.id)])
    .map((response) => ({ id: response.id, score: Number(verdicts[String(response.id)].score) }))
    .sort((a, b) => b.score - a.score);
  if (scored.length < 2 || scored[0].score === scored[1].score) return null;
  return { ...scored[0], runnerUp: scored[1].score };
}

export class Annotator {
  constructor(handler) {
    this.handler = handler;
    this.root = el("annotator");
    this.project = this.root.dataset.project;
    this.base = `/api/v1/projects/${this.project}/tasks/`;
    this.task = null;
    this.busy = false;
    this.submitId = null;
    this.shownAt = 0;
    this.mine = Number(this.root.dataset.mine || 0);
    this.progressAsked = 0; // progress requests sent; a reply older than the last one shown is ignored
    this.progressShown = 0;
    this.answersOut = 0; // answers sent whose reply has not come back
    this.zoomAt = { x: 50, y: 50 }; // the zoomed image's centre, in percent of its width and height
    this.prefetching = Boolean(handler.prefetch);
    this.ahead = null; // the task prefetched to show after task `aheadFor`, once it is here
    this.aheadFor = null;
    this.aheadPending = false;
  }

  start() {
    el("btn-skip").addEventListener("click", () => this.skip());
    el("btn-back").addEventListener("click", () => this.back());
    el("btn-resume").addEventListener("click", () => this.next());
    el("btn-retry").addEventListener("click", () => this.next());
    el("btn-instructions").addEventListener("click", () => this.toggleInstructions());
    const zoom = el("zoom");
    if (zoom) {
      zoom.addEventListener("click", (event) => this.toggleZoom(event));
      zoom.addEventListener("mousemove", (event) => this.panZoom(event));
    }
    document.addEventListener("keydown", (event) => this.onKey(event));
    this.next();
  }

  setStatus(text, kind = "") {
    const status = el("status");
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  setProgress(progress) {
    if (progress) {
      el("done").textContent = String(progress.done);
      el("total").textContent = String(progress.total);
      // Your count and quota are the server's only while no answer of yours is on its way: the server may
      // already count one whose reply, still to come, adds it here too (counted twice). With answers out, each
      // reply counts its own. Answers only add up: a reply that crossed a later local count does not take it back.
      if (this.answersOut === 0) {
        this.mine = Math.max(this.mine, progress.mine);
        const quota = el("quota");
        quota.hidden = progress.quota_left === null || progress.quota_left === undefined;
        if (!quota.hidden) quota.textContent = ` · ${progress.quota_left} left for you`;
      }
    }
    el("mine").textContent = String(this.mine);
  }

  async refreshProgress() {
    const asked = ++this.progressAsked;
    try {
      const { data } = await apiCall("GET", `${this.base}progress/`);
      this.progressLoaded = true;
      if (asked < this.progressShown) return; // a later request's reply is already shown
      this.progressShown = asked;
      this.setProgress(data);
    } catch (error) {
      /* progress is a nicety; the task loop goes on */
    }
  }

  async next() {
    if (this.busy) return;
    this.busy = true;
    try {
      const { status, data, headers } = await apiCall("POST", `${this.base}next/`);
      if (status === 204) {
        this.showEmpty(headers.get("X-Queue-Message") || "No task is left for you.");
        this.refreshProgress();
      } else {
        this.show(data);
        this.prefetch();
        if (!this.progressLoaded) this.refreshProgress();
      }
    } catch (error) {
      if (error.status === 429) this.showEmpty(error.message); // too fast: say so, with "Check again"
      else this.setStatus(error.message, "error");
    } finally {
      this.busy = false;
    }
    if (this.handler.ready) this.handler.ready();
  }

  // Lease the task to show after the one on screen, so that answering shows it at once. Started only when no
  // answer is on its way (the server would give back that task, still held); a failure costs nothing: the page
  // then asks for the next task after the answer, as without prefetching.
  async prefetch() {
    const shown = this.task;
    if (!this.prefetching || !shown || shown.status === "submitted") return;
    if (this.aheadFor === shown.assignment_id && (this.ahead || this.aheadPending)) return;
    this.aheadFor = shown.assignment_id;
    this.holdAhead(null);
    this.aheadPending = true;
    try {
      const { status, data } = await apiCall("POST", `${this.base}next/?after=${shown.assignment_id}`);
      if (this.aheadFor === shown.assignment_id && status === 200 && data.assignment_id !== shown.assignment_id) {
        this.holdAhead(data);
      }
    } catch (error) {
      /* too fast, quota reached, offline: the next task is asked for after the answer instead */
    } finally {
      if (this.aheadFor === shown.assignment_id) this.aheadPending = false;
    }
  }

  // The prefetched task, or null; the page says whether it holds one (data-prefetched), so that a test can press
  // a key once the next task is in hand rather than guess when its reply has been read.
  holdAhead(task) {
    this.ahead = task;
    if (task) this.root.dataset.prefetched = "";
    else delete this.root.dataset.prefetched;
  }

  // The task prefetched to follow `assignmentId`, if it is here and its lease has more than a minute left
  // (else the next task is asked for, which renews it); it is taken once.
  takeAhead(assignmentId) {
    const ahead = this.aheadFor === assignmentId ? this.ahead : null;
    this.holdAhead(null);
    this.aheadFor = null;
    this.aheadPending = false;
    if (!ahead || Date.parse(ahead.lease_expires_at) - Date.now() < 60_000) return null;
    return ahead;
  }

  // After an answer or a skip: the prefetched task is on screen already, or the one the answer brought back
  // (`submit/?next=1`: `next_task`, or `next_empty` saying why there is none) is shown, or the next one is
  // asked for. With a prefetched task on screen, the task the answer brought is the one to show after it.
  async moveOn(ahead, answered = null) {
    const following = answered ? answered.next_task : null;
    if (ahead) {
      if (following && following.assignment_id !== ahead.assignment_id && this.task === ahead) {
        this.holdAhead(following);
        this.aheadFor = ahead.assignment_id;
        this.aheadPending = false;
      }
      this.prefetch();
    } else if (following) {
      this.show(following);
      this.prefetch();
    } else if (answered && answered.next_empty) {
      this.showEmpty(answered.next_empty.message);
    } else {
      await this.next();
      return;
    }
    if (this.handler.ready) this.handler.ready();
  }

  showEmpty(message) {
    this.task = null;
    el("task").hidden = true;
    el("ai").hidden = true;
    el("amend").hidden = true;
    el("empty-message").textContent = message;
    el("empty").hidden = false;
  }

  show(task) {
    this.task = task;
    this.submitId = requestId(); // one id per answer shown: a double click or a retry stores one annotation
    this.shownAt = performance.now();
    el("empty").hidden = true;
    el("amend").hidden = task.status !== "submitted";
    el("item-prompt").textContent = task.prompt;
    const image = el("item-image");
    this.setZoom(false);
    const zoom = el("zoom");
    if (task.image_url) {
      if (image.getAttribute("src") !== task.image_url) image.src = task.image_url;
      zoom.hidden = false;
    } else {
      image.removeAttribute("src");
      zoom.hidden = true;
    }
    el("task").dataset.assignment = String(task.assignment_id);
    el("task").hidden = false;
    this.handler.render(task, task.answer);
    this.showSuggestion(task);
  }

  labelOf(task, responseId) {
    const index = task.responses.findIndex((response) => response.id === responseId);
    if (this.handler.label) return this.handler.label(index);
    return task.responses.length > 1 ? `Answer ${index + 1}` : "Answer";
  }

  showSuggestion(task) {
    const box = el("ai");
    const body = el("ai-body");
    body.replaceChildren();
    const verdicts = task.ai_suggestion && task.ai_suggestion.responses;
    if (!verdicts || Object.keys(verdicts).length === 0) {
      box.hidden = true;
      return;
    }
    for (const response of task.responses) {
      const verdict = verdicts[String(response.id)];
      if (!verdict) continue;
      const part = document.createElement("div");
      part.className = "ai-verdict";
      const head = document.createElement("p");
      const rejected = verdict.claims.filter(isDoubted).length;
      head.textContent = `${this.labelOf(task, response.id)}: score ${Number(verdict.score).toFixed(2)}, ` +
        `${rejected} of ${verdict.claims.length} claims doubted (${verdict.labeler_model})`;
      part.append(head, markedAnswer(response.text, verdict.claims));
      if (verdict.rewrite) {
        const rewrite = document.createElement("p");
        rewrite.className = "ai-rewrite";
        const written = document.createElement("span");
        written.className = "ai-rewrite-text";
        written.textContent = verdict.rewrite;
        rewrite.append("Suggested correction: ", written);
        part.append(rewrite);
        // The correction page takes it as marked segments the annotator then edits ("Use it", key U).
        if (this.handler.useRewrite && verdict.rewrite_segments && verdict.rewrite_segments.length) {
          const use = document.createElement("button");
          use.type = "button";
          use.id = "btn-use-rewrite";
          use.append("Use it ");
          const key = document.createElement("kbd");
          key.textContent = "U";
          use.append(key);
          use.title = "Mark the suggested correction's changes as segments, to edit before you submit";
          use.addEventListener("click", () => this.handler.useRewrite());
          rewrite.append(" ", use);
        }
      }
      const list = document.createElement("ul");
      for (const claim of verdict.claims) {
        const item = document.createElement("li");
        item.className = isDoubted(claim) ? "doubted" : "";
        const p = pYesText(claim);
        item.textContent = `${claim.claim}${p ? ` — ${p}` : ""}`;
        list.append(item);
      }
      part.append(list);
      body.append(part);
    }
    const preference = preferredAnswer(task.responses, verdicts);
    if (preference !== null) {
      const line = document.createElement("p");
      line.className = "ai-prefers";
      line.dataset.response = String(preference.id);
      line.textContent = `The labeler prefers ${this.labelOf(task, preference.id)} (score ${preference.score.toFixed(2)} ` +
        `against ${preference.runnerUp.toFixed(2)}).`;
      body.prepend(line);
    }
    box.hidden = body.childElementCount === 0;
  }

  // Send the answer; a repeated call for the same shown task reuses its request id. With a prefetched task
  // that task is shown at once; should the answer be refused, the answered task comes back to the screen.
  async submit(body, doneMessage) {
    if (!this.task || this.busy) return;
    this.busy = true;
    const task = this.task;
    const submitId = this.submitId;
    const spentMs = Math.round(performance.now() - this.shownAt);
    const ahead = task.status === "submitted" ? null : this.takeAhead(task.assignment_id);
    if (ahead) {
      this.show(ahead);
      this.setStatus(`Saving… ${doneMessage}`);
    }
    // The answer brings the next task back (`next=1`): one request per answer. With a prefetched task on
    // screen, the task after that one (`after`).
    const query = ahead ? `?next=1&after=${ahead.assignment_id}` : "?next=1";
    let answered = null;
    this.answersOut += 1;
    try {
      ({ data: answered } = await apiCall("POST", `${this.base}${task.assignment_id}/submit/${query}`, {
        ...body,
        client_request_id: submitId,
        time_spent_ms: spentMs,
      }));
      if (!ahead) this.task = null; // answered: a second click has nothing left to send
      if (this.handler.forget) this.handler.forget(task);
      if (task.status === "submitted") {
        this.setStatus(`Changed your earlier answer. ${doneMessage}`, "ok");
      } else {
        this.mine += 1;
        el("mine").textContent = String(this.mine);
        this.setStatus(`Saved. ${doneMessage}`, "ok");
        const quota = el("quota");
        if (!quota.hidden) quota.textContent = quota.textContent.replace(/\d+/, (n) => String(Math.max(0, n - 1)));
        // The header's "done" counts tasks finished by everyone: only the server knows whether this answer
        // finished one. Asked beside loading the next task, not before it.
        this.refreshProgress();
      }
    } catch (error) {
      if (ahead) {
        // Back to the task whose answer was refused, with its request id; the prefetched one waits for it.
        this.show(task);
        this.submitId = submitId;
        this.shownAt = performance.now() - spentMs;
        this.holdAhead(ahead);
        this.aheadFor = task.assignment_id;
      }
      this.setStatus(error.message, "error");
      if (this.handler.failed) this.handler.failed(error.message);
      return;
    } finally {
      // From the reply to here nothing awaits, so no progress reply can come between the count and this.
      this.answersOut -= 1;
      this.busy = false;
    }
    await this.moveOn(ahead, answered); // after an amend, the next task is the one you hold
  }

  async skip() {
    if (!this.task || this.busy || !this.leaveConfirmed("press Skip")) return;
    if (this.task.status === "submitted") {
      await this.next(); // skipping an earlier answer means leaving it as it is
      return;
    }
    this.busy = true;
    const task = this.task;
    let ahead = null;
    try {
      await apiCall("POST", `${this.base}${task.assignment_id}/skip/`);
      if (this.handler.forget) this.handler.forget(task);
      this.task = null;
      ahead = this.takeAhead(task.assignment_id);
      if (ahead) this.show(ahead);
      this.setStatus("Skipped; you will not get that task again.");
    } catch (error) {
      this.setStatus(error.message, "error");
      return;
    } finally {
      this.busy = false;
    }
    await this.moveOn(ahead);
  }

  async back() {
    if (this.busy || !this.leaveConfirmed("press Back")) return;
    this.busy = true;
    try {
      const before = this.task ? `?before=${this.task.assignment_id}` : "";
      const { status, data } = await apiCall("GET", `${this.base}previous/${before}`);
      if (status === 204) {
        this.setStatus("There is no earlier answer of yours to go back to.");
      } else {
        this.setStatus("");
        this.show(data);
      }
    } catch (error) {
      this.setStatus(error.message, "error");
    } finally {
      this.busy = false;
    }
  }

  toggleInstructions(force) {
    const panel = el("instructions");
    panel.hidden = force === undefined ? !panel.hidden : !force;
    el("btn-instructions").setAttribute("aria-expanded", String(!panel.hidden));
  }

  isZoomed() {
    return el("zoom").classList.contains("zoomed");
  }

  // Zooming in by key starts at the middle; by click, at the point clicked.
  setZoom(on, at = { x: 50, y: 50 }) {
    el("zoom").classList.toggle("zoomed", on);
    this.moveZoom(at);
  }

  moveZoom({ x, y }) {
    this.zoomAt = { x: Math.max(0, Math.min(100, x)), y: Math.max(0, Math.min(100, y)) };
    el("item-image").style.transformOrigin = `${this.zoomAt.x}% ${this.zoomAt.y}%`;
  }

  toggleZoom(event) {
    this.setZoom(!this.isZoomed());
    if (event) this.panZoom(event);
  }

  panZoom(event) {
    if (!this.isZoomed()) return;
    const box = el("zoom").getBoundingClientRect();
    this.moveZoom({ x: ((event.clientX - box.left) / box.width) * 100, y: ((event.clientY - box.top) / box.height) * 100 });
  }

  // While zoomed, plain arrows move around the image (before the page's own use of them) and Esc zooms out.
  zoomKey(event) {
    if (!this.isZoomed() || isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey || event.shiftKey) {
      return false;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      this.setZoom(false);
      return true;
    }
    const arrow = ARROWS[event.key];
    if (!arrow) return false;
    event.preventDefault();
    this.moveZoom({ x: this.zoomAt.x + arrow[0] * PAN_STEP, y: this.zoomAt.y + arrow[1] * PAN_STEP });
    return true;
  }

  // Leaving a task with unsaved work (marked segments, a new order) takes a second press.
  leaveConfirmed(what) {
    if (!this.handler.dirty || !this.handler.dirty()) return true;
    const now = Date.now();
    if (this.leaveAskedAt && now - this.leaveAskedAt < 4000) {
      this.leaveAskedAt = 0;
      return true;
    }
    this.leaveAskedAt = now;
    this.setStatus(`This task has unsaved changes; ${what} again to leave them.`, "error");
    return false;
  }

  onKey(event) {
    if (event.ctrlKey && event.key === "Enter" && this.handler.submitKey) {
      event.preventDefault();
      this.handler.submitKey();
      return;
    }
    if (this.zoomKey(event)) return;
    if (this.handler.onKey && this.handler.onKey(event)) return;
    if (event.key === "Escape" && isTyping(event.target)) {
      event.target.blur();
      return;
    }
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "?") {
      event.preventDefault();
      this.toggleInstructions();
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      this.skip();
    } else if (event.key === "Backspace") {
      event.preventDefault();
      this.back();
    } else if (event.key === "z" || event.key === "Z") {
      event.preventDefault();
      if (!el("zoom").hidden) this.toggleZoom();
    }
  }
}
