"use strict";
const $ = (sel) => document.querySelector(sel);
const showId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
// per song: its row's elements and the sequence number of the tally shown
const rows = new Map();

function setTally(t) {
  const row = rows.get(t.songId);
  if (!row || t.seq < row.seq) return; // an older update than the one shown
  row.seq = t.seq;
  row.up.textContent = String(t.up);
  row.down.textContent = String(t.down);
  row.score.textContent = String(t.score);
}

function setMine(songId, direction) {
  const row = rows.get(songId);
  row.li.dataset.vote = direction;
  row.upButton.setAttribute("aria-pressed", String(direction === "up"));
  row.downButton.setAttribute("aria-pressed", String(direction === "down"));
}

async function vote(songId, direction) {
  const row = rows.get(songId);
  const next = row.li.dataset.vote === direction ? "none" : direction; // a second press takes it back
  const response = await fetch(`/api/shows/${encodeURIComponent(showId)}/votes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ songId, direction: next }),
  });
  if (!response.ok) return;
  const tally = await response.json();
  setMine(songId, tally.myVote);
  setTally(tally);
}

function button(label, title, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

function songRow(song) {
  const li = document.createElement("li");
  li.dataset.song = song.id;
  const name = document.createElement("span");
  name.textContent = song.name;
  if (song.played) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "played";
    name.append(" ", tag);
  }
  const controls = document.createElement("span");
  controls.className = "votes";
  const up = document.createElement("span");
  up.className = "up";
  const down = document.createElement("span");
  down.className = "down";
  const score = document.createElement("strong");
  score.className = "score";
  const upButton = button("▲", "vote up", () => vote(song.id, "up"));
  const downButton = button("▼", "vote down", () => vote(song.id, "down"));
  controls.append(upButton, up, downButton, down, " = ", score);
  li.append(name, controls);
  rows.set(song.id, { li, up, down, score, upButton, downButton, seq: -1 });
  return li;
}

function render(body) {
  const show = body.show;
  document.title = `Setlist: ${show.artist.name}, ${show.date || "date to be announced"}`;
  $("#name").textContent = `${show.artist.name}: ${show.venue ? show.venue.name : show.name}`;
  $("#artist").textContent = show.artist.name;
  $("#artist").href = `/artists/${encodeURIComponent(show.artist.slug)}`;
  $("#facts").textContent = [show.date || "date to be announced", show.venue && show.venue.city, `${show.views} views`]
    .filter(Boolean)
    .join(" · ");
  $("#songs").replaceChildren(...body.songs.map(songRow));
  for (const song of body.songs) {
    setTally(song);
    setMine(song.id, song.myVote);
  }
  if (body.setlist) {
    $("#played-section").hidden = false;
    $("#played").replaceChildren(
      ...body.setlist.map((name) => {
        const li = document.createElement("li");
        li.textContent = name;
        return li;
      }),
    );
  }
}

let loaded = false;

async function load() {
  if (loaded) return;
  loaded = true;
  const response = await fetch(`/api/shows/${encodeURIComponent(showId)}`);
  if (!response.ok) {
    $("#name").textContent = "Show not found";
    return;
  }
  render(await response.json());
}

function follow() {
  const stream = new EventSource(`/api/shows/${encodeURIComponent(showId)}/stream`);
  stream.onopen = () => {
    $("#live").textContent = "live";
    load(); // once subscribed, so no change falls between the page's counts and the stream
  };
  stream.onmessage = (event) => setTally(JSON.parse(event.data));
  stream.onerror = () => {
    $("#live").textContent = "reconnecting…";
  };
}

follow();
setTimeout(load, 2000); // without a stream, the counts as they are
