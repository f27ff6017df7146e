// The review stream (issue 17): one annotation at a time, oldest first, never the reviewer's own.
// Keys: A accept, E edit (Ctrl+Enter saves, Esc leaves), R reject (needs a comment), C comment,
// N next (leave it for later), ? keys. All text goes in through textContent.
// Correction offsets are code points (as Python indexes strings), not UTF-16 units: Array.from(text).
import { api, apiCall, requestId } from "./api.js";

const el = (id) => document.getElementById(id);
const root = el("reviewer");
const slug = root.dataset.project;
const kind = root.dataset.kind;
const SCALE = JSON.parse(el("scale-data").textContent);
const base = `/api/v1/projects/${slug}`;
const cps = (text) => Array.from(text);

// current: the annotation shown; skippedPast: the id of the last one passed with N (the stream goes on
// after it); draft: the reviewer's version while editing (null when not editing).
const state = { current: null, skippedPast: null, draft: null, busy: false, reviewed: 0 };

function make(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined) node.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function say(message, tone = "") {
  el("status").textContent = message;
  el("status").className = `status ${tone}`;
}

const isTyping = (target) => ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);

// ------------------------------------------------------------------------------------------ showing

// The answer with the marked segments (type colour, label "type → replacement"), as nodes.
function markedText(text, segments) {
  const chars = cps(text);
  const nodes = [];
  let at = 0;
  for (const segment of segments) {
    if (segment.start > at) nodes.push(document.createTextNode(chars.slice(at, segment.start).join("")));
    const index = Math.max(0, SCALE.indexOf(segment.type));
    const replacement = segment.replacement === "" ? "(delete)" : segment.replacement;
    nodes.push(
      make("mark", {
        className: `seg t${index}`,
        text: chars.slice(segment.start, segment.end).join(""),
        attrs: { "data-label": `${segment.type} → ${replacement}`, title: `${segment.type} → ${replacement}` },
      }),
    );
    at = segment.end;
  }
  if (at < chars.length) nodes.push(document.createTextNode(chars.slice(at).join("")));
  return nodes;
}

// The corrected answer as a diff of the original: removed spans struck out, replacements underlined.
function diffText(text, segments) {
  const chars = cps(text);
  const nodes = [];
  let at = 0;
  for (const segment of segments) {
    if (segment.start > at) nodes.push(document.createTextNode(chars.slice(at, segment.start).join("")));
    nodes.push(make("del", { text: chars.slice(segment.start, segment.end).join("") }));
    if (segment.replacement) nodes.push(make("ins", { text: segment.replacement }));
    at = segment.end;
  }
  if (at < chars.length) nodes.push(document.createTextNode(chars.slice(at).join("")));
  return nodes;
}

const CHOICES = { a: "A is better", b: "B is better", tie: "Tie", both_bad: "Both bad" };

function answerView(task, answer) {
  const view = [];
  if (kind === "correction") {
    const text = task.responses[0].text;
    const segments = answer.segments || [];
    view.push(make("h2", { text: segments.length ? `Marked segments (${segments.length})` : "Marked: no hallucination" }));
    view.push(make("p", { className: "text answer-text review-answer", attrs: { id: "review-answer" } }, markedText(text, segments)));
    view.push(make("h2", { text: "Corrected answer" }));
    view.push(make("p", { className: "text preview", attrs: { id: "review-diff" } }, diffText(text, segments)));
  } else if (kind === "pairwise") {
    const [left, right] = task.responses;
    const grid = make("div", { className: "answers" });
    for (const [letter, response] of [["a", left], ["b", right]]) {
      const chosen = answer.choice === letter;
      const card = make("div", { className: `answer${chosen ? " picked" : ""}` }, [
        make("h2", { text: `Answer ${letter.toUpperCase()}${chosen ? " — chosen" : ""}` }),
        make("p", { className: "text", text: response ? response.text : "" }),
      ]);
      grid.append(card);
    }
    view.push(grid);
    const strength = ["a", "b"].includes(answer.choice) ? (answer.strength === 2 ? ", clearly" : ", slightly") : "";
    view.push(make("p", { className: "verdict", attrs: { id: "review-verdict" }, text: `Judged: ${CHOICES[answer.choice] || answer.choice}${strength}` }));
    if (answer.reason) view.push(make("p", { className: "muted", text: `Reason: ${answer.reason}` }));
  } else if (kind === "rating") {
    view.push(make("p", { className: "caption", text: task.responses[0].text }));
    view.push(make("p", { className: "verdict", attrs: { id: "review-verdict" }, text: `Rated: ${SCALE[answer.level] ?? answer.level}` }));
  } else {
    const texts = Object.fromEntries(task.responses.map((r) => [r.id, r.text]));
    view.push(make("h2", { text: "Ranked, best first" }));
    view.push(make("ol", { className: "review-ranking", attrs: { id: "review-verdict" } }, answer.order.map((id) => make("li", { text: texts[id] ?? `#${id}` }))));
  }
  return view;
}

function show(task) {
  state.current = task;
  state.draft = null;
  // A field of the panel about to be hidden would keep the focus until the browser's focus fix-up at its next
  // rendering, and a key pressed before that (R right after Ctrl+Enter) would go to it and be lost.
  if (el("edit-panel").contains(document.activeElement)) document.activeElement.blur();
  el("edit-panel").hidden = true;
  el("btn-save-edit").hidden = true;
  el("btn-edit").hidden = false;
  el("review-empty").hidden = true;
  el("review-task").hidden = false;
  const image = el("item-image");
  image.closest("figure").hidden = !task.image_url;
  if (task.image_url) image.src = task.image_url;
  el("item-prompt").textContent = task.prompt;
  const when = new Date(task.submitted_at).toLocaleString();
  el("item-meta").textContent = `${task.external_id} · answered by ${task.annotator} · ${when}`;
  el("annotation-view").replaceChildren(...answerView(task, task.answer));
  const previous = el("previous-review");
  previous.hidden = !task.review;
  if (task.review) previous.textContent = `Reviewed before: ${task.review.decision}${task.review.comment ? ` — “${task.review.comment}”` : ""}. A new decision replaces it.`;
  el("comment").value = "";
  say("");
}

async function loadNext() {
  const url = state.skippedPast ? `${base}/reviews/next/?after=${state.skippedPast}` : `${base}/reviews/next/`;
  try {
    const { status, data } = await apiCall("GET", url);
    if (status === 204) {
      state.current = null;
      el("review-task").hidden = true;
      el("review-empty").hidden = false;
      el("review-empty-message").textContent = state.skippedPast
        ? "Nothing left after the answers you passed by."
        : "Nothing left to review. Every answer of this project has a decision.";
      el("btn-start-over").textContent = state.skippedPast ? "Back to the ones passed by" : "Check again";
      return;
    }
    show(data);
  } catch (error) {
    say(error.message, "error");
  }
}

// ------------------------------------------------------------------------------------------ deciding

async function decide(decision, edited) {
  if (!state.current || state.busy) return;
  const comment = el("comment").value.trim();
  if (decision === "rejected" && !comment) {
    el("comment").focus();
    say("Say why in the comment, then press Ctrl+Enter to reject.", "error");
    return;
  }
  state.busy = true;
  try {
    const body = { annotation_id: state.current.annotation_id, decision, comment, client_request_id: requestId() };
    if (edited) body.edited = edited;
    await api("POST", `${base}/reviews/`, body);
    state.reviewed += 1;
    el("reviewed-count").textContent = String(state.reviewed);
    await loadNext();
    say(`${decision[0].toUpperCase()}${decision.slice(1)}.`, "ok");
  } catch (error) {
    say(error.message, "error");
  } finally {
    state.busy = false;
  }
}

function skip() {
  if (!state.current) return;
  state.skippedPast = state.current.annotation_id;
  loadNext();
}

// ------------------------------------------------------------------------------------------ editing

function selectOf(options, value, label) {
  const select = make("select", { attrs: { "aria-label": label } });
  for (const [optionValue, text] of options) {
    const option = make("option", { text, attrs: { value: optionValue } });
    if (String(optionValue) === String(value)) option.selected = true;
    select.append(option);
  }
  return select;
}

// Code-point offset of a DOM position inside `container` (text nodes only count).
function offsetIn(container, node, offset) {
  const range = document.createRange();
  range.setStart(container, 0);
  range.setEnd(node, offset);
  return cps(range.toString()).length;
}

function renderCorrectionEditor() {
  const text = state.current.responses[0].text;
  const chars = cps(text);
  const segments = state.draft.segments;
  const answer = make("p", { className: "text answer-text", attrs: { id: "edit-answer", tabindex: "0" } }, markedText(text, segments));
  const types = make("p", { className: "muted small", text: `Select words above, then press 1–${SCALE.length} (${SCALE.map((t, i) => `${i + 1} ${t}`).join(", ")}) to mark them.` });
  const list = make("ol", { className: "segment-list", attrs: { id: "edit-segments" } });
  segments.forEach((segment, index) => {
    const replacement = make("input", { attrs: { "aria-label": `Replacement of “${segment.original}”`, value: segment.replacement, maxlength: "2000" } });
    replacement.value = segment.replacement;
    replacement.addEventListener("input", () => {
      segment.replacement = replacement.value;
      el("edit-preview").replaceChildren(...diffText(text, segments));
    });
    const type = selectOf(SCALE.map((t) => [t, t]), segment.type, "Type");
    type.addEventListener("change", () => {
      segment.type = type.value;
    });
    const remove = make("button", { className: "danger", text: "Remove", attrs: { type: "button" } });
    remove.addEventListener("click", () => {
      segments.splice(index, 1);
      renderCorrectionEditor();
    });
    list.append(make("li", { className: "edit-segment" }, [make("q", { text: segment.original }), type, replacement, remove]));
  });
  const preview = make("p", { className: "text preview", attrs: { id: "edit-preview" } }, diffText(text, segments));
  el("edit-body").replaceChildren(answer, types, list, make("h2", { text: "Corrected answer" }), preview);
  state.draft.mark = (typeIndex) => {
    const selection = window.getSelection();
    if (!selection.rangeCount || selection.isCollapsed) return false;
    const range = selection.getRangeAt(0);
    if (!answer.contains(range.startContainer) || !answer.contains(range.endContainer)) return false;
    let start = offsetIn(answer, range.startContainer, range.startOffset);
    let end = offsetIn(answer, range.endContainer, range.endOffset);
    while (start < end && /\s/u.test(chars[start])) start += 1;
    while (end > start && /\s/u.test(chars[end - 1])) end -= 1;
    if (start >= end) return false;
    if (segments.some((s) => s.start < end && start < s.end)) {
      say("That overlaps a marked segment; remove it first.", "error");
      return true;
    }
    const original = chars.slice(start, end).join("");
    segments.push({ start, end, type: SCALE[typeIndex], replacement: "", original });
    segments.sort((x, y) => x.start - y.start);
    renderCorrectionEditor();
    const at = segments.findIndex((s) => s.start === start);
    el("edit-segments").children[at].querySelector("input").focus();
    say("Type the replacement (empty deletes the span), then Ctrl+Enter saves the edit.");
    return true;
  };
}

function renderChoiceEditor() {
  const draft = state.draft;
  const choice = selectOf(Object.entries(CHOICES), draft.choice, "Choice");
  choice.id = "edit-choice";
  choice.addEventListener("change", () => {
    draft.choice = choice.value;
  });
  const strength = selectOf([[1, "slightly"], [2, "clearly"]], draft.strength, "Strength");
  strength.addEventListener("change", () => {
    draft.strength = Number(strength.value);
  });
  el("edit-body").replaceChildren(
    make("label", { text: "Choice (keys 1 A, 2 B, 3 tie, 4 both bad) " }, [choice]),
    make("label", { text: "Strength " }, [strength]),
  );
  draft.mark = (index) => {
    const value = ["a", "b", "tie", "both_bad"][index];
    if (!value) return false;
    draft.choice = value;
    choice.value = value;
    return true;
  };
}

function renderLevelEditor() {
  const draft = state.draft;
  const level = selectOf(SCALE.map((name, index) => [index, `${index + 1} ${name}`]), draft.level, "Level");
  level.id = "edit-level";
  level.addEventListener("change", () => {
    draft.level = Number(level.value);
  });
  el("edit-body").replaceChildren(make("label", { text: `Level (keys 1–${SCALE.length}) ` }, [level]));
  draft.mark = (index) => {
    if (index >= SCALE.length) return false;
    draft.level = index;
    level.value = String(index);
    return true;
  };
}

function renderRankingEditor() {
  const draft = state.draft;
  const texts = Object.fromEntries(state.current.responses.map((r) => [r.id, r.text]));
  const list = make("ol", { className: "review-ranking", attrs: { id: "edit-ranking" } });
  draft.order.forEach((id, index) => {
    const up = make("button", { text: "↑", attrs: { type: "button", "aria-label": "Move up" } });
    up.disabled = index === 0;
    up.addEventListener("click", () => {
      [draft.order[index - 1], draft.order[index]] = [draft.order[index], draft.order[index - 1]];
      renderRankingEditor();
    });
    list.append(make("li", {}, [up, document.createTextNode(` ${texts[id] ?? `#${id}`}`)]));
  });
  el("edit-body").replaceChildren(list);
  draft.mark = () => false;
}

function startEdit() {
  if (!state.current) return;
  const answer = state.current.answer;
  if (kind === "correction") state.draft = { segments: (answer.segments || []).map((s) => ({ ...s })) };
  else if (kind === "pairwise") state.draft = { choice: answer.choice, strength: answer.strength };
  else if (kind === "rating") state.draft = { level: answer.level };
  else state.draft = { order: [...answer.order] };
  ({ correction: renderCorrectionEditor, pairwise: renderChoiceEditor, rating: renderLevelEditor, ranking: renderRankingEditor })[kind]();
  el("edit-panel").hidden = false;
  el("btn-save-edit").hidden = false;
  el("btn-edit").hidden = true;
  // The keys (digits) work while the panel itself has the focus; a focused select would eat them.
  (kind === "correction" ? el("edit-answer") : el("edit-panel")).focus();
  say(kind === "correction" ? "Change replacements or types, remove or mark segments; Ctrl+Enter saves the edit." : "Change the answer; Ctrl+Enter saves the edit.");
}

function stopEdit() {
  state.draft = null;
  el("edit-panel").hidden = true;
  el("btn-save-edit").hidden = true;
  el("btn-edit").hidden = false;
  say("Edit left; the answer is as the annotator gave it.");
}

function saveEdit() {
  if (!state.draft) return;
  const { mark, ...edited } = state.draft;
  decide("edited", edited);
}

// ------------------------------------------------------------------------------------------ keys

el("btn-accept").addEventListener("click", () => decide("accepted"));
el("btn-reject").addEventListener("click", () => decide("rejected"));
el("btn-edit").addEventListener("click", startEdit);
el("btn-save-edit").addEventListener("click", saveEdit);
el("btn-next").addEventListener("click", skip);
el("btn-start-over").addEventListener("click", () => {
  state.skippedPast = null;
  loadNext();
});
el("btn-help").addEventListener("click", () => {
  const help = el("review-help");
  help.hidden = !help.hidden;
  el("btn-help").setAttribute("aria-expanded", String(!help.hidden));
});

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.metaKey) return;
  if (event.key === "Enter" && event.ctrlKey) {
    event.preventDefault();
    if (state.draft) saveEdit();
    else if (event.target === el("comment")) decide("rejected");
    return;
  }
  if (event.key === "Escape") {
    if (isTyping(event.target)) event.target.blur();
    else if (state.draft) stopEdit();
    return;
  }
  if (isTyping(event.target) || event.ctrlKey) return;
  if (state.draft && /^[1-9]$/.test(event.key)) {
    if (state.draft.mark(Number(event.key) - 1)) event.preventDefault();
    return;
  }
  const actions = {
    a: () => (state.draft ? null : decide("accepted")),
    e: () => (state.draft ? null : startEdit()),
    r: () => decide("rejected"),
    c: () => el("comment").focus(),
    n: skip,
    "?": () => el("btn-help").click(),
  };
  const key = event.key === "?" ? "?" : event.key.toLowerCase();
  const action = actions[key];
  if (!action) return;
  event.preventDefault();
  if (!state.current && key !== "?") {
    if (key === "n") el("btn-start-over").click(); // nothing shown: N looks again
    return;
  }
  action();
});

loadNext();
