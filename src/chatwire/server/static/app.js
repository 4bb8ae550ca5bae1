// The chatwire chat page. Everything the model says is shown with textContent,
// never parsed as HTML, so an answer cannot inject markup or script.
"use strict";

const $ = (id) => document.getElementById(id);
const CONVERSATION_HEADER = "X-Chatwire-Conversation";

const state = { messages: [], conversation: null, controller: null };

function apiKey() {
  return localStorage.getItem("chatwire-api-key") || "";
}

async function api(path, options = {}, retried = false) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("Authorization", "Bearer " + apiKey());
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && !retried) {
    const key = window.prompt("This server needs an API key:");
    if (key) {
      localStorage.setItem("chatwire-api-key", key);
      return api(path, options, true);
    }
  }
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch {
    return response.statusText;
  }
}

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = "message " + role;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(body);
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function addNote(item, text) {
  const note = document.createElement("span");
  note.className = "note";
  note.textContent = text;
  item.append(note);
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("prompt").disabled = busy;
}

function render() {
  $("messages").replaceChildren();
  for (const message of state.messages) addMessage(message.role, message.content);
}

async function loadModels() {
  const response = await api("/v1/models");
  if (!response.ok) return;
  const { data } = await response.json();
  const select = $("model");
  select.replaceChildren();
  for (const model of data) {
    const option = document.createElement("option");
    option.value = model.id;
    option.textContent = model.id;
    select.append(option);
  }
}

async function loadHistory() {
  const response = await api("/v1/conversations");
  if (response.status === 404) {
    $("history-off").hidden = false;
    return;
  }
  if (!response.ok) return;
  const { data } = await response.json();
  const list = $("history");
  list.replaceChildren();
  for (const conversation of data) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = conversation.title || "(empty)";
    button.title = conversation.updated_at;
    button.dataset.conversation = conversation.id;
    if (conversation.id === state.conversation) button.classList.add("current");
    button.addEventListener("click", () => openConversation(conversation.id));
    item.append(button);
    list.append(item);
  }
}

async function openConversation(id) {
  const response = await api("/v1/conversations/" + encodeURIComponent(id));
  if (!response.ok) {
    $("status").textContent = await errorText(response);
    return;
  }
  const { exchanges } = await response.json();
  const last = exchanges[exchanges.length - 1];
  state.messages = [...last.messages];
  if (last.response) state.messages.push({ role: "assistant", content: last.response });
  state.conversation = id;
  render();
  const items = $("messages").querySelectorAll(".message.assistant");
  if (last.status !== "complete" && items.length) addNote(items[items.length - 1], last.status);
  $("status").textContent = "";
  loadHistory();
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.messages = [];
  state.conversation = null;
  render();
  $("status").textContent = "";
  loadHistory();
  $("prompt").focus();
}

// Server-Sent Events from a fetch body: split on blank lines, read "data:" lines.
async function readEvents(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data && onData(data) === false) return;
    }
  }
}

async function send(text) {
  state.messages.push({ role: "user", content: text });
  addMessage("user", text);
  const item = addMessage("assistant", "");
  const body = item.querySelector(".text");
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  $("status").textContent = "…";
  let answer = "";
  try {
    const headers = { "Content-Type": "application/json" };
    if (state.conversation) headers[CONVERSATION_HEADER] = state.conversation;
    const response = await api("/v1/chat/completions", {
      method: "POST",
      headers,
      signal: controller.signal,
      body: JSON.stringify({ model: $("model").value || undefined, messages: state.messages,
        stream: true }),
    });
    state.conversation = response.headers.get(CONVERSATION_HEADER) || state.conversation;
    if (!response.ok) {
      addNote(item, "error: " + (await errorText(response)));
      return;
    }
    $("status").textContent = "";
    await readEvents(response, (data) => {
      if (data === "[DONE]") return false;
      const event = JSON.parse(data);
      if (event.error) {
        addNote(item, "error: " + event.error.message);
        return false;
      }
      const delta = event.choices && event.choices[0] && event.choices[0].delta;
      if (delta && delta.content) {
        answer += delta.content;
        body.textContent = answer;
        item.scrollIntoView({ block: "end" });
      }
      return true;
    });
  } catch (error) {
    if (error.name === "AbortError") addNote(item, "stopped");
    else addNote(item, "error: " + error.message);
  } finally {
    if (answer) state.messages.push({ role: "assistant", content: answer });
    state.controller = null;
    setBusy(false);
    $("status").textContent = "";
    $("prompt").focus();
    loadHistory();
  }
}

function submit(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || state.controller) return;
  $("prompt").value = "";
  send(text);
}

$("composer").addEventListener("submit", submit);
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) submit(event);
});
$("stop").addEventListener("click", () => state.controller && state.controller.abort());
$("new-chat").addEventListener("click", newChat);
loadModels();
loadHistory();
