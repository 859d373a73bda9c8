// The fleet map as SVG, drawn from the data alone: zones (GeoJSON polygons), hubs and vehicles placed by
// an equirectangular projection around the data's bounds, so it needs no internet. Map tiles are drawn
// under it only when the page is given a tile URL template (?tiles=https://.../{z}/{x}/{y}.png).
// All text goes through textContent / <title>: ids and names come from the API, never used as HTML.
"use strict";

const FleetMap = (() => {
  const WIDTH = 1000;
  const MIN_HEIGHT = 420;
  const MAX_HEIGHT = 900;
  const PAD = 0.06;               // share of the span added around the data
  const MAX_TILES = 64;

  // ---------------------------------------------------------------- bounds and projection

  function emptyBounds() { return { minLon: Infinity, maxLon: -Infinity, minLat: Infinity, maxLat: -Infinity }; }

  function extend(bounds, lon, lat) {
    if (!Number.isFinite(lon) || !Number.isFinite(lat)) return;
    bounds.minLon = Math.min(bounds.minLon, lon); bounds.maxLon = Math.max(bounds.maxLon, lon);
    bounds.minLat = Math.min(bounds.minLat, lat); bounds.maxLat = Math.max(bounds.maxLat, lat);
  }

  function polygonsOf(geometry) {
    if (!geometry) return [];
    if (geometry.type === "Polygon") return [geometry.coordinates];
    if (geometry.type === "MultiPolygon") return geometry.coordinates;
    return [];
  }

  // Grows `bounds` (kept between refreshes, so the map does not jump as vehicles move) by everything drawn.
  function grow(bounds, zones, hubs, vehicles) {
    for (const feature of zones) {
      for (const polygon of polygonsOf(feature.geometry)) for (const ring of polygon) for (const [lon, lat] of ring) extend(bounds, lon, lat);
    }
    for (const hub of hubs) extend(bounds, hub.lon, hub.lat);
    for (const vehicle of vehicles) extend(bounds, vehicle.lon, vehicle.lat);
    return bounds;
  }

  // -> {x(lon), y(lat), width, height, lonLat(x, y)}: metres-true locally (longitudes shrunk by cos(lat)).
  function projection(bounds) {
    let { minLon, maxLon, minLat, maxLat } = bounds;
    if (!Number.isFinite(minLon)) { minLon = 140.6; maxLon = 140.7; minLat = 36.5; maxLat = 36.6; }   // Hitachi
    const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    let lonSpan = Math.max(maxLon - minLon, 0.002);
    let latSpan = Math.max(maxLat - minLat, 0.002);
    let cLon = (minLon + maxLon) / 2, cLat = (minLat + maxLat) / 2;
    lonSpan *= 1 + 2 * PAD; latSpan *= 1 + 2 * PAD;
    // keep the height between MIN_HEIGHT and MAX_HEIGHT by widening the other span
    const ratio = latSpan / (lonSpan * k);
    if (ratio * WIDTH < MIN_HEIGHT) latSpan = (MIN_HEIGHT / WIDTH) * lonSpan * k;
    if (ratio * WIDTH > MAX_HEIGHT) lonSpan = latSpan / k / (MAX_HEIGHT / WIDTH);
    const scale = WIDTH / (lonSpan * k);
    const west = cLon - lonSpan / 2, north = cLat + latSpan / 2;
    const height = Math.round(latSpan * scale);
    return {
      width: WIDTH, height, west, east: cLon + lonSpan / 2, north, south: cLat - latSpan / 2,
      x: (lon) => (lon - west) * k * scale,
      y: (lat) => (north - lat) * scale,
      metresPerUnit: 111_320 / scale,
    };
  }

  // ---------------------------------------------------------------- tiles (only when configured)

  function tileX(lon, z) { return Math.floor(((lon + 180) / 360) * 2 ** z); }
  function tileY(lat, z) {
    const r = lat * Math.PI / 180;
    return Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * 2 ** z);
  }
  function tileLon(x, z) { return (x / 2 ** z) * 360 - 180; }
  function tileLat(y, z) { return Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / 2 ** z))) * 180 / Math.PI; }

  // The tiles covering the view at a zoom where one tile is about 256 of our units wide (at most MAX_TILES).
  function tiles(template, p) {
    let z = Math.floor(Math.log2((p.width * 360) / ((p.east - p.west) * 256)));
    z = Math.max(1, Math.min(19, z));
    let list;
    for (;;) {
      const x0 = tileX(p.west, z), x1 = tileX(p.east, z), y0 = tileY(p.north, z), y1 = tileY(p.south, z);
      if ((x1 - x0 + 1) * (y1 - y0 + 1) <= MAX_TILES || z <= 1) {
        list = [];
        for (let x = x0; x <= x1; x += 1) {
          for (let y = y0; y <= y1; y += 1) {
            const url = template.replaceAll("{z}", z).replaceAll("{x}", x).replaceAll("{y}", y);
            list.push({ url, x: p.x(tileLon(x, z)), y: p.y(tileLat(y, z)),
              w: p.x(tileLon(x + 1, z)) - p.x(tileLon(x, z)), h: p.y(tileLat(y + 1, z)) - p.y(tileLat(y, z)) });
          }
        }
        return list;
      }
      z -= 1;
    }
  }

  // ---------------------------------------------------------------- layers

  function ringPath(ring, p) {
    return ring.map(([lon, lat], i) => `${i ? "L" : "M"}${p.x(lon).toFixed(1)},${p.y(lat).toFixed(1)}`).join("") + "Z";
  }

  function drawTiles(layer, template, p) {
    layer.replaceChildren();
    if (!template) return;
    for (const tile of tiles(template, p)) {
      layer.append(GC.svg("image", { href: tile.url, x: tile.x.toFixed(1), y: tile.y.toFixed(1),
        width: tile.w.toFixed(1), height: tile.h.toFixed(1), preserveAspectRatio: "none", class: "tile" }));
    }
  }

  function drawZones(layer, zones, p, describe) {
    layer.replaceChildren();
    for (const feature of zones) {
      const props = feature.properties ?? {};
      const d = polygonsOf(feature.geometry).map((polygon) => polygon.map((ring) => ringPath(ring, p)).join("")).join("");
      if (!d) continue;
      const path = GC.svg("path", { d, class: `zone ${props.kind ?? "other"}`, "fill-rule": "evenodd",
        "data-zone": props.id ?? "", "data-kind": props.kind ?? "", tabindex: "0" });
      path.append(GC.svg("title", {}, describe(props)));
      layer.append(path);
    }
  }

  function drawHubs(layer, hubs, p, describe, label) {
    layer.replaceChildren();
    for (const hub of hubs) {
      if (!Number.isFinite(hub.lat) || !Number.isFinite(hub.lon)) continue;
      const x = p.x(hub.lon), y = p.y(hub.lat);
      const g = GC.svg("g", { class: "hub", "data-hub": hub.id, "data-gap": String(Boolean(hub.gap)),
        "data-kind": hub.kind ?? "", tabindex: "0" });
      g.append(GC.svg("title", {}, describe(hub)));
      g.append(GC.svg("rect", { x: (x - 11).toFixed(1), y: (y - 11).toFixed(1), width: 22, height: 22, rx: 3 }));
      g.append(GC.svg("text", { class: "hub-count", x: x.toFixed(1), y: (y + 4.5).toFixed(1), "text-anchor": "middle" },
        hub.available === null || hub.available === undefined ? "–" : String(hub.available)));
      g.append(GC.svg("text", { class: "hub-name", x: (x + 15).toFixed(1), y: (y + 4).toFixed(1) }, label(hub)));
      layer.append(g);
    }
  }

  function batteryLevel(pct, lowPct) {
    if (pct === null || pct === undefined) return "unknown";
    if (pct < lowPct) return "low";
    if (pct < 2 * lowPct) return "fair";
    return "ok";
  }

  // Vehicles: a dot coloured by state inside a ring coloured by battery; walking-speed mobility is a
  // rounded square; tipped over gets a red "!" and comms lost a dashed grey ring.
  // Each vehicle keeps its <g> between refreshes (keyed by fleet/vehicle): a refresh moves it and sets
  // its attributes, and rebuilds its shapes only when its type, tipped or online flag changed. A fleet of
  // thousands then costs attribute writes, not a new DOM every 2 s.
  function vehicleShapes(g, v) {
    g.replaceChildren(GC.svg("title"), GC.svg("circle", { class: "battery-ring", r: 8 }));
    if (v.vehicle_type === "slowmobility") g.append(GC.svg("rect", { class: "body", x: -5.5, y: -5.5, width: 11, height: 11, rx: 2.5 }));
    else g.append(GC.svg("circle", { class: "body", r: 5.5 }));
    if (v.tipped_over) g.append(GC.svg("text", { class: "mark tipped", x: 9, y: -6 }, "!"));
    if (v.online === false) g.append(GC.svg("text", { class: "mark offline", x: 9, y: -6 }, "×"));
  }

  function drawVehicles(layer, vehicles, p, describe, lowPct, selected) {
    const existing = layer.vehicleNodes ?? new Map();       // key -> <g>, kept on the layer between refreshes
    const kept = new Map();
    for (const v of vehicles) {
      if (!Number.isFinite(v.lat) || !Number.isFinite(v.lon)) continue;
      const key = `${v.fleet}/${v.vehicle}`;
      let g = existing.get(key);
      if (!g) {
        g = GC.svg("g", { class: "vehicle", "data-key": key, "data-vehicle": v.vehicle, "data-fleet": v.fleet, tabindex: "0" });
        layer.append(g);
      }
      kept.set(key, g);
      const shape = `${v.vehicle_type}|${Boolean(v.tipped_over)}|${v.online !== false}`;
      if (g.shape !== shape) { vehicleShapes(g, v); g.shape = shape; }
      const data = { state: v.state ?? "unknown", online: String(v.online !== false), tipped: String(Boolean(v.tipped_over)),
        battery: batteryLevel(v.battery_pct, lowPct), type: v.vehicle_type ?? "", selected: String(key === selected) };
      const signature = Object.values(data).join("|");
      if (g.signature !== signature) { Object.assign(g.dataset, data); g.signature = signature; }   // attribute writes restyle: only on change
      g.setAttribute("transform", `translate(${p.x(v.lon).toFixed(1)},${p.y(v.lat).toFixed(1)})`);
      const title = describe(v);
      if (g.firstChild.textContent !== title) g.firstChild.textContent = title;
    }
    for (const [key, g] of existing) if (!kept.has(key)) g.remove();
    layer.vehicleNodes = kept;
  }

  // A scale bar of a round distance, bottom left.
  function drawScale(layer, p) {
    layer.replaceChildren();
    const target = p.metresPerUnit * 150;
    const step = [50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000].find((m) => m >= target / 2) ?? 10000;
    const w = step / p.metresPerUnit;
    const y = p.height - 14;
    layer.append(GC.svg("line", { class: "scale", x1: 12, x2: 12 + w, y1: y, y2: y }));
    layer.append(GC.svg("text", { class: "scale-text", x: 12, y: y - 5 }, step >= 1000 ? `${step / 1000} km` : `${step} m`));
  }

  function ensureLayers(svgEl) {
    if (!svgEl.querySelector("g.layer")) {
      for (const name of ["tiles", "zones", "hubs", "vehicles", "scale"]) {
        svgEl.append(GC.svg("g", { class: `layer ${name}`, "data-layer": name }));
      }
    }
    const get = (name) => svgEl.querySelector(`g[data-layer=${name}]`);
    return { tiles: get("tiles"), zones: get("zones"), hubs: get("hubs"), vehicles: get("vehicles"), scale: get("scale") };
  }

  // Draws everything; `opts`: {bounds, tiles, lowPct, selected, describe: {zone, hub, vehicle}, hubLabel}.
  function draw(svgEl, data, opts) {
    const p = projection(grow(opts.bounds, data.zones, data.hubs, data.vehicles));
    svgEl.setAttribute("viewBox", `0 0 ${p.width} ${p.height}`);
    const layers = ensureLayers(svgEl);
    if (svgEl.dataset.tilesFor !== `${opts.tiles}|${p.west},${p.north},${p.east},${p.south}`) {
      drawTiles(layers.tiles, opts.tiles, p);
      svgEl.dataset.tilesFor = `${opts.tiles}|${p.west},${p.north},${p.east},${p.south}`;
    }
    drawZones(layers.zones, data.zones, p, opts.describe.zone);
    drawHubs(layers.hubs, data.hubs, p, opts.describe.hub, opts.hubLabel);
    drawVehicles(layers.vehicles, data.vehicles, p, opts.describe.vehicle, opts.lowPct, opts.selected);
    drawScale(layers.scale, p);
    return p;
  }

  return { draw, emptyBounds, projection, grow, tiles, batteryLevel };
})();
