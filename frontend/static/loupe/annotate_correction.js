// Segment-level correction (RLHF-V): mark hallucinated spans of the answer, give each a type and a
// replacement; overlapping spans are refused; a live preview shows the corrected answer.
// Offsets are counted in code points (as Python indexes strings), not UTF-16 units: Array.from(text).
// The answer is a contenteditable element only so that the keyboard has a caret (Shift+arrows select);
// every edit to it is refused (beforeinput), and all text goes in through textContent.
// Marks not yet submitted are kept as a draft in localStorage (per project and task), so a reload or a
// closed tab loses nothing; the draft is dropped once the task is submitted or skipped.
import { Annotator, el, isTyping } from "./annotate.js";

const TYPES = JSON.parse(el("scale-data").textContent);
const root = el("answer-text");
const cpLength = (text) => Array.from(text).length;
const isSpace = (ch) => /\s/u.test(ch);

// rewrite: the labeler's suggested correction of this answer as segments (null: none offered);
// rewriteUsed: the annotator took it ("Use it"), which the submit reports beside the segments.
const state = {
  text: "", cps: [], segments: [], editing: null, saved: [], rewrite: null, rewriteUsed: false, draftKey: null,
};

const draftKey = (task) => `loupe-draft:${el("annotator").dataset.project}:${task.assignment_id}`;

// localStorage may be full or switched off: a draft is a nicety, never in the way of annotating.
function readDraft(key) {
  try {
    return JSON.parse(window.localStorage.getItem(key) || "null");
  } catch (error) {
    return null;
  }
}

function writeDraft() {
  if (!state.draftKey) return;
  try {
    if (JSON.stringify(state.segments) === state.saved) window.localStorage.removeItem(state.draftKey);
    else window.localStorage.setItem(state.draftKey, JSON.stringify({ text: state.text, segments: state.segments, rewriteUsed: state.rewriteUsed }));
  } catch (error) {
    /* not stored: the marks are still on the page */
  }
}

function dropDraft(task) {
  try {
    window.localStorage.removeItem(draftKey(task));
  } catch (error) {
    /* nothing stored */
  }
}

// A draft's segments if it was made on this very answer text and they still fit it without overlapping.
function usableDraft(draft) {
  if (!draft || draft.text !== state.text || !Array.isArray(draft.segments)) return null;
  let end = 0;
  for (const segment of draft.segments) {
    const fits = Number.isInteger(segment.start) && Number.isInteger(segment.end) && segment.start >= end &&
      segment.start < segment.end && segment.end <= state.cps.length && TYPES.includes(segment.type) &&
      typeof segment.replacement === "string" && segment.original === slice(segment.start, segment.end);
    if (!fits) return null;
    end = segment.end;
  }
  return draft.segments;
}

function slice(start, end) {
  return state.cps.slice(start, end).join("");
}

function offsetOf(node, offset) {
  const range = document.createRange();
  range.setStart(root, 0);
  range.setEnd(node, offset);
  return cpLength(range.toString());
}

// The current selection in the answer as code-point offsets, whitespace trimmed; null if none.
function selectedSpan() {
  const selection = window.getSelection();
  if (!selection.rangeCount) return null;
  const range = selection.getRangeAt(0);
  if (!root.contains(range.startContainer) || !root.contains(range.endContainer)) return null;
  let start = offsetOf(range.startContainer, range.startOffset);
  let end = offsetOf(range.endContainer, range.endOffset);
  if (end < start) [start, end] = [end, start];
  while (start < end && isSpace(state.cps[start])) start += 1;
  while (end > start && isSpace(state.cps[end - 1])) end -= 1;
  return { start, end, collapsed: range.collapsed };
}

function caretOffset() {
  const span = selectedSpan();
  return span && span.collapsed ? span.start : null;
}

// Places the caret (collapsed) at a code-point offset of the answer.
function placeCaret(offset) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let left = offset;
  let node = walker.nextNode();
  while (node) {
    const length = cpLength(node.data);
    if (left <= length) {
      const units = Array.from(node.data).slice(0, left).join("").length;
      window.getSelection().collapse(node, units);
      return;
    }
    left -= length;
    node = walker.nextNode();
  }
  window.getSelection().collapse(root, root.childNodes.length);
}

function segmentAt(offset) {
  return state.segments.findIndex((s) => s.start <= offset && offset < s.end);
}

function typeIndex(type) {
  return Math.max(0, TYPES.indexOf(type));
}

function renderText() {
  root.replaceChildren();
  let cursor = 0;
  state.segments.forEach((segment, index) => {
    if (segment.start > cursor) root.append(document.createTextNode(slice(cursor, segment.start)));
    const mark = document.createElement("mark");
    mark.className = `seg t${typeIndex(segment.type)}`;
    mark.dataset.index = String(index);
    mark.dataset.label = segment.type;
    mark.title = `${segment.type} → ${segment.replacement === "" ? "(deleted)" : segment.replacement}`;
    mark.textContent = slice(segment.start, segment.end);
    root.append(mark);
    cursor = segment.end;
  });
  if (cursor < state.cps.length) root.append(document.createTextNode(slice(cursor, state.cps.length)));
}

function renderPreview() {
  const preview = el("preview");
  preview.replaceChildren();
  let cursor = 0;
  for (const segment of state.segments) {
    preview.append(document.createTextNode(slice(cursor, segment.start)));
    const fix = document.createElement(segment.replacement === "" ? "del" : "ins");
    fix.className = `fix t${typeIndex(segment.type)}`;
    fix.textContent = segment.replacement === "" ? slice(segment.start, segment.end) : segment.replacement;
    preview.append(fix);
    cursor = segment.end;
  }
  preview.append(document.createTextNode(slice(cursor, state.cps.length)));
}

function renderList() {
  const list = el("segment-list");
  list.replaceChildren();
  state.segments.forEach((segment, index) => {
    const item = document.createElement("li");
    const type = document.createElement("span");
    type.className = `tag t${typeIndex(segment.type)}`;
    type.textContent = segment.type;
    const change = document.createElement("span");
    change.className = "change";
    change.textContent = `“${segment.original}” → ${segment.replacement === "" ? "(deleted)" : `“${segment.replacement}”`}`;
    const edit = document.createElement("button");
    edit.type = "button";
    edit.textContent = "Edit";
    edit.addEventListener("click", () => openEditor({ index }));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => removeSegment(index));
    item.append(type, " ", change, " ", edit, " ", remove);
    list.append(item);
  });
  el("btn-submit").disabled = state.segments.length === 0;
}

function renderAll() {
  renderText();
  renderPreview();
  renderList();
  writeDraft();
}

function openEditor({ index = -1, start, end, type }) {
  const existing = index >= 0 ? state.segments[index] : null;
  state.editing = existing ? { index, start: existing.start, end: existing.end } : { index: -1, start, end };
  const original = slice(state.editing.start, state.editing.end);
  el("editor-original").textContent = original;
  el("editor-type").value = existing ? existing.type : TYPES[type ?? 0];
  const input = el("editor-replacement");
  input.value = existing ? existing.replacement : original;
  el("editor-remove").hidden = !existing;
  el("editor").hidden = false;
  input.focus();
  input.select();
}

function closeEditor() {
  const editing = state.editing;
  state.editing = null;
  el("editor").hidden = true;
  root.focus();
  if (editing) placeCaret(editing.end);
}

function saveEditor() {
  const { index, start, end } = state.editing;
  const original = slice(start, end);
  const replacement = el("editor-replacement").value;
  if (replacement === original) {
    annotator.setStatus("The replacement is the same as the marked text: type the correct text, or cancel.", "error");
    return;
  }
  const segment = { start, end, original, replacement, type: el("editor-type").value };
  if (index >= 0) state.segments[index] = segment;
  else state.segments.push(segment);
  state.segments.sort((a, b) => a.start - b.start);
  annotator.setStatus("");
  renderAll();
  closeEditor();
}

function removeSegment(index) {
  const [removed] = state.segments.splice(index, 1);
  renderAll();
  state.editing = null;
  el("editor").hidden = true;
  root.focus();
  placeCaret(removed.start);
  annotator.setStatus(`Removed the mark on “${removed.original}”.`);
}

// Start marking the selected span with a type (index into TYPES), refusing overlaps.
function markSelection(type) {
  const span = selectedSpan();
  if (!span || span.start === span.end) {
    const at = caretOffset();
    const inside = at === null ? -1 : segmentAt(at);
    if (inside >= 0) {
      openEditor({ index: inside });
      if (type !== undefined) el("editor-type").value = TYPES[type];
      return;
    }
    annotator.setStatus("Select the wrong words first: drag with the mouse, or hold Shift and use the arrow keys.", "error");
    return;
  }
  const same = state.segments.findIndex((s) => s.start === span.start && s.end === span.end);
  if (same >= 0) {
    openEditor({ index: same });
    if (type !== undefined) el("editor-type").value = TYPES[type];
    return;
  }
  const clash = state.segments.find((s) => s.start < span.end && span.start < s.end);
  if (clash) {
    annotator.setStatus(
      `That span overlaps the marked segment “${clash.original}”; edit or remove that one first.`, "error");
    return;
  }
  annotator.setStatus("");
  openEditor({ start: span.start, end: span.end, type });
}

// "Use it": the labeler's rewrite becomes the marked segments (its diff from the answer, typed as the
// scale's last type, "other" by default), replacing any marks; the annotator edits them, then submits.
function useRewrite() {
  if (!state.rewrite) {
    annotator.setStatus("The AI labeler suggested no correction for this answer.", "error");
    return;
  }
  const replaced = state.segments.length;
  state.segments = state.rewrite.map(({ start, end, replacement, original }) =>
    ({ start, end, replacement, original, type: TYPES[TYPES.length - 1] }));
  state.rewriteUsed = true;
  state.editing = null;
  el("editor").hidden = true;
  renderAll();
  root.focus();
  const n = state.segments.length;
  annotator.setStatus(
    `Took the suggested correction: ${n} segment${n > 1 ? "s" : ""} marked${replaced ? " (your marks were replaced)" : ""}. ` +
    "Check each, edit or remove any that are wrong, then Ctrl+Enter to submit.", "ok");
}

function payload() {
  return state.segments.map(({ start, end, type, replacement, original }) => ({ start, end, type, replacement, original }));
}

function submitCorrection() {
  if (state.editing) saveEditor();
  if (state.editing) return;
  if (state.segments.length === 0) {
    annotator.setStatus("Nothing is marked: mark the hallucinated spans, or press N if there are none.", "error");
    return;
  }
  const body = { segments: payload() };
  if (state.rewriteUsed) body.ai_rewrite_used = true;
  annotator.submit(body, `${state.segments.length} segment${state.segments.length > 1 ? "s" : ""} corrected.`);
}

function submitNone() {
  if (state.segments.length > 0) {
    annotator.setStatus("Some spans are marked; remove them first, or submit the correction.", "error");
    return;
  }
  const body = { segments: [] };
  if (state.rewriteUsed) body.ai_rewrite_used = true;
  annotator.submit(body, "No hallucination.");
}

const handler = {
  render(task, answer) {
    state.text = task.responses[0].text;
    state.cps = Array.from(state.text);
    state.segments = answer ? answer.segments.map((s) => ({ ...s })) : [];
    state.saved = JSON.stringify(state.segments);
    state.editing = null;
    const verdicts = task.ai_suggestion && task.ai_suggestion.responses;
    const verdict = verdicts && verdicts[String(task.responses[0].id)];
    state.rewrite = verdict && verdict.rewrite_segments && verdict.rewrite_segments.length ? verdict.rewrite_segments : null;
    state.rewriteUsed = false;
    state.draftKey = draftKey(task);
    const draft = readDraft(state.draftKey);
    const drafted = usableDraft(draft);
    if (drafted && JSON.stringify(drafted) !== state.saved) {
      state.segments = drafted.map((s) => ({ ...s }));
      state.rewriteUsed = Boolean(draft.rewriteUsed);
      const n = drafted.length;
      const what = n ? `${n} unsaved mark${n === 1 ? "" : "s"}` : "your unsaved removal of every mark";
      annotator.setStatus(`Restored ${what} from your draft: check, then submit.`, "ok");
    }
    el("editor").hidden = true;
    renderAll();
    root.focus();
    placeCaret(0);
  },
  forget: dropDraft,
  useRewrite,
  dirty: () => JSON.stringify(state.segments) !== state.saved || state.editing !== null,
  submitKey: submitCorrection,
  onKey(event) {
    if (state.editing && event.key === "Escape") {
      event.preventDefault();
      closeEditor();
      return true;
    }
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return false;
    if (event.target.closest && event.target.closest("button")) return false; // Enter/Space press the button
    const digit = /^Digit([1-9])$/.exec(event.code);
    if (digit && Number(digit[1]) <= TYPES.length) {
      event.preventDefault();
      markSelection(Number(digit[1]) - 1);
      return true;
    }
    if (event.key === "Enter") {
      event.preventDefault();
      markSelection();
      return true;
    }
    if (event.key === "Delete") {
      const at = caretOffset();
      const inside = at === null ? -1 : segmentAt(at);
      if (inside >= 0) {
        event.preventDefault();
        removeSegment(inside);
        return true;
      }
      return false;
    }
    if ((event.key === "u" || event.key === "U") && state.rewrite) {
      event.preventDefault();
      useRewrite();
      return true;
    }
    if (event.key === "n" || event.key === "N") {
      event.preventDefault();
      submitNone();
      return true;
    }
    return false;
  },
};

// The answer text is read-only: refuse typing, pasting, cutting and dropping into it.
root.addEventListener("beforeinput", (event) => event.preventDefault());
root.addEventListener("drop", (event) => event.preventDefault());
root.addEventListener("click", (event) => {
  const mark = event.target.closest && event.target.closest("mark.seg");
  if (mark && window.getSelection().isCollapsed) openEditor({ index: Number(mark.dataset.index) });
});
el("editor").addEventListener("submit", (event) => {
  event.preventDefault();
  saveEditor();
});
el("editor-cancel").addEventListener("click", closeEditor);
el("editor-remove").addEventListener("click", () => removeSegment(state.editing.index));
document.querySelectorAll("[data-type-index]").forEach((button) =>
  // mousedown keeps the selection in the answer (a click would move focus first)
  button.addEventListener("mousedown", (event) => {
    event.preventDefault();
    markSelection(Number(button.dataset.typeIndex));
  }));
el("btn-submit").addEventListener("click", submitCorrection);
el("btn-none").addEventListener("click", submitNone);

const annotator = new Annotator(handler);
annotator.start();
