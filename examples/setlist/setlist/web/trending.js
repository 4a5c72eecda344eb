"use strict";
const $ = (sel) => document.querySelector(sel);

function item(children) {
  const li = document.createElement("li");
  for (const child of children) li.append(child);
  return li;
}

function text(value, cls) {
  const span = document.createElement("span");
  span.textContent = value;
  if (cls) span.className = cls;
  return span;
}

function link(href, label) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = label;
  return a;
}

async function loadTrending() {
  const response = await fetch("/api/trending");
  const body = await response.json();
  const list = $("#trending");
  list.replaceChildren();
  if (!body.artists.length) list.append(item([text("No artist imported yet: search for one above.", "muted")]));
  for (const artist of body.artists) {
    list.append(item([link(`/artists/${artist.slug}`, artist.name), text(`score ${artist.trendingScore.toFixed(1)}`, "muted")]));
  }
}

async function startImport(id) {
  const response = await fetch("/api/artists/import", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ tmAttractionId: id }),
  });
  const body = await response.json();
  if (response.ok) location.href = `/artists/${body.slug}`;
  else alert(body.detail ? JSON.stringify(body.detail) : "import failed");
}

$("#search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = new FormData(event.target).get("q");
  const response = await fetch(`/api/search?q=${encodeURIComponent(q)}`);
  const body = await response.json();
  const list = $("#results");
  list.replaceChildren();
  if (!response.ok) {
    list.append(item([text(body.detail || "search failed", "muted")]));
    return;
  }
  if (!body.results.length) list.append(item([text("No artist found.", "muted")]));
  for (const hit of body.results) {
    const button = document.createElement("button");
    button.textContent = hit.artistId ? "Re-import" : "Import";
    button.addEventListener("click", () => startImport(hit.tmAttractionId));
    const name = hit.artistId ? link(`/artists/${hit.slug}`, hit.name) : text(hit.name);
    list.append(item([name, text(`${hit.upcomingEvents} upcoming events`, "muted"), button]));
  }
});

loadTrending();
