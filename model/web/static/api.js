// The page's one door to the server: every answer is kept by request, so "Save this view" can
// write them into one HTML file that opens offline (then this cache is all there is).
"use strict";
const API = {
  saved: window.TINYLLAMA_SAVED || null,   // set in a saved view
  cache: {},
  key(path, body) { return path + (body ? " " + JSON.stringify(body) : ""); },
  async get(path, body) {
    const key = this.key(path, body);
    if (this.saved) {
      if (key in this.saved.cache) return this.saved.cache[key];
      throw new Error("not in this saved view: " + path);
    }
    if (key in this.cache) return this.cache[key];
    const opts = body ? {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)} : {};
    const res = await fetch(path, opts);
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.status + "");
    this.cache[key] = data;
    return data;
  },
};
