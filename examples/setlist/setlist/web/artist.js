"use strict";
const $ = (sel) => document.querySelector(sel);
const key = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
let stream = null;

function row(left, right, tagText, href) {
  const li = document.createElement("li");
  const a = document.createElement(href ? "a" : "span");
  if (href) a.href = href;
  a.textContent = left;
  li.append(a);
  const b = document.createElement("span");
  b.className = "muted";
  b.textContent = right;
  if (tagText) {
    const tag = document.createElement("span");
    tag.className = `tag ${tagText}`;
    tag.textContent = tagText;
    b.append(" ", tag);
  }
  li.append(b);
  return li;
}

function showProgress(status) {
  if (!status) return;
  const percent = Math.max(0, Math.min(100, Number(status.progress) || 0));
  const bar = $("#progress");
  bar.setAttribute("aria-valuenow", String(Math.round(percent)));
  bar.firstElementChild.style.width = `${percent}%`;
  $("#stage").textContent = status.stage;
  $("#message").textContent = status.message || "";
  $("#import").className = status.stage;
}

function render(body) {
  const artist = body.artist;
  document.title = `Setlist: ${artist.name}`;
  $("#name").textContent = artist.name;
  const facts = [];
  if (artist.genres.length) facts.push(artist.genres.join(", "));
  if (artist.followers != null) facts.push(`${artist.followers.toLocaleString()} followers`);
  if (artist.catalogDegraded) facts.push("catalog filtered by title only (no audio features)");
  $("#facts").textContent = facts.join(" · ");
  $("#show-count").textContent = `(${body.counts.shows})`;
  $("#song-count").textContent = `(${body.counts.songs})`;
  $("#shows").replaceChildren(
    ...body.shows.map((s) =>
      row(
        s.venue ? `${s.venue.name}, ${s.venue.city || ""}` : s.name,
        s.date || "date to be announced",
        s.status === "onsale" ? "" : s.status,
        `/shows/${encodeURIComponent(s.id)}`,
      ),
    ),
  );
  $("#songs").replaceChildren(...body.songs.map((s) => row(s.name, s.album || "")));
  showProgress(body.status);
}

async function load() {
  const response = await fetch(`/api/artists/${encodeURIComponent(key)}`);
  if (!response.ok) {
    $("#name").textContent = "Artist not found";
    return null;
  }
  const body = await response.json();
  render(body);
  return body;
}

function follow(artistId) {
  if (stream) return;
  stream = new EventSource(`/api/artists/${artistId}/stream`);
  stream.onmessage = (event) => {
    const status = JSON.parse(event.data);
    showProgress(status);
    if (status.stage === "completed" || status.stage === "failed") {
      stream.close();
      stream = null;
      load();
    }
  };
  stream.onerror = () => {
    // the stream ended or broke: fall back to polling the status
    if (stream) stream.close();
    stream = null;
    setTimeout(poll, 1500, artistId);
  };
}

async function poll(artistId) {
  const response = await fetch(`/api/artists/${artistId}/status`);
  if (!response.ok) return;
  const status = await response.json();
  showProgress(status);
  if (status.finished) load();
  else follow(artistId);
}

load().then((body) => {
  if (body && body.status && !body.status.finished) follow(body.artist.id);
});
