// SneakyNet bone viewer: groups with visibility toggles, names on hover/click, orientation marks,
// bounding size and skin opacity, on top of model-viewer's public API only.
const meta = JSON.parse(document.getElementById("sn-meta").textContent);
const viewer = document.getElementById("sn-model");
const statusLine = document.getElementById("sn-status");
const hover = document.getElementById("sn-hover");
const picked = document.getElementById("sn-picked");
const hidden = new Set();  // names of hidden groups
const api = { errors: [], meta, setGroupVisible, loaded: null, timing: { script: performance.now() } };
window.sneakynetViewer = api;
window.addEventListener("error", (e) => api.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => api.errors.push(String(e.reason)));

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

async function modelUrl() {
  const embedded = document.getElementById("sn-glb").textContent.trim();
  if (!embedded) return meta.glb_url;  // served by `sneakynet view`
  const response = await fetch("data:model/gltf-binary;base64," + embedded);  // data: works from file://
  return URL.createObjectURL(await response.blob());
}

function groupOf(materialName) {
  if (materialName === "skin") return "skin";
  const bone = meta.bones[materialName];
  return bone ? bone.group : null;
}

function setMaterialVisible(material, visible) {
  const [r, g, b] = material.pbrMetallicRoughness.baseColorFactor;
  const skin = material.name === "skin";
  const alpha = skin ? Number(document.getElementById("sn-skin-opacity").value) : 1;
  material.setAlphaMode(skin ? "BLEND" : visible ? "OPAQUE" : "MASK");
  if (!visible && !skin) material.setAlphaCutoff(0.5);
  material.pbrMetallicRoughness.setBaseColorFactor([r, g, b, visible ? alpha : 0]);
}

function setGroupVisible(group, visible) {
  if (visible) hidden.delete(group); else hidden.add(group);
  const box = document.getElementById("sn-group-" + group);
  if (box) box.checked = visible;
  for (const material of viewer.model ? viewer.model.materials : []) {
    if (groupOf(material.name) === group) setMaterialVisible(material, visible);
  }
}

function buildGroupList() {
  const list = document.getElementById("sn-groups");
  const groups = meta.groups.concat(meta.has_skin ? [{ name: "skin", label: "skin (CT at -300 HU)",
    count: 1, color: [245, 204, 176] }] : []);
  for (const group of groups) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.id = "sn-group-" + group.name;
    box.addEventListener("change", () => setGroupVisible(group.name, box.checked));
    const swatch = document.createElement("span");
    swatch.className = "sn-swatch";
    swatch.style.background = `rgb(${group.color.join(",")})`;
    label.append(box, swatch, `${group.label} (${group.count})`);
    list.append(label);
  }
}

function boneAt(x, y) {
  const material = viewer.materialFromPoint(x, y);
  if (!material) return null;
  const group = groupOf(material.name);
  if (group === null || hidden.has(group)) return null;
  if (material.name === "skin") return { display: "skin (CT at -300 HU)", group: "skin" };
  return meta.bones[material.name];
}

function describe(bone) {
  return `${bone.display} (${bone.group})`;
}

let pending = null;
viewer.addEventListener("pointermove", (event) => {
  pending = event;
  requestAnimationFrame(() => {
    if (!pending) return;
    const bone = boneAt(pending.clientX, pending.clientY);
    const rect = viewer.getBoundingClientRect();
    hover.hidden = !bone;
    if (bone) {
      hover.textContent = describe(bone);
      hover.style.left = `${pending.clientX - rect.left + 14}px`;
      hover.style.top = `${pending.clientY - rect.top + 10}px`;
    }
    pending = null;
  });
});
viewer.addEventListener("pointerleave", () => { hover.hidden = true; });
viewer.addEventListener("click", (event) => {
  const bone = boneAt(event.clientX, event.clientY);
  picked.textContent = bone ? "Selected: " + describe(bone) : "Click or hover a bone to see its name.";
});

function placeOrientationMarks() {
  const c = viewer.getBoundingBoxCenter();
  const d = viewer.getDimensions();
  const m = 0.04 + 0.05 * Math.max(d.x, d.y, d.z);
  const at = (x, y, z) => `${x}m ${y}m ${z}m`;
  // glTF frame of the export: patient's left = +X, superior = +Y, anterior = +Z
  viewer.updateHotspot({ name: "hotspot-R", position: at(c.x - d.x / 2 - m, c.y, c.z) });
  viewer.updateHotspot({ name: "hotspot-L", position: at(c.x + d.x / 2 + m, c.y, c.z) });
  viewer.updateHotspot({ name: "hotspot-A", position: at(c.x, c.y, c.z + d.z / 2 + m) });
  viewer.updateHotspot({ name: "hotspot-S", position: at(c.x, c.y + d.y / 2, c.z) });  // inside the frame
}

function showFacts() {
  const s = meta.bones_size_cm;
  document.getElementById("sn-size").textContent =
    `${meta.bone_count} bones spanning ${s[0].toFixed(1)} cm (R–L) × ${s[1].toFixed(1)} cm (S–I) × ` +
    `${s[2].toFixed(1)} cm (A–P); AR places them at true scale.`;
  document.getElementById("sn-source").textContent = meta.source ? `from ${meta.source}` : "";
  if (meta.has_skin) {
    document.getElementById("sn-skin").hidden = false;
    document.getElementById("sn-skin-opacity").addEventListener("input", () => {
      setGroupVisible("skin", !hidden.has("skin"));
    });
  }
}

api.loaded = new Promise((resolve, reject) => {
  viewer.addEventListener("load", () => {
    if (meta.has_skin) setGroupVisible("skin", true);
    placeOrientationMarks();
    api.timing.loaded = performance.now();  // ms since navigation start
    setStatus("loaded", "ready");
    resolve(true);
  });
  viewer.addEventListener("error", (event) => {
    const message = `could not load the model: ${event.detail && event.detail.type}`;
    api.errors.push(message);
    setStatus("error", message);
    reject(new Error(message));
  });
});
api.loaded.catch(() => {});
buildGroupList();
showFacts();
modelUrl().then((url) => { api.timing.decoded = performance.now(); viewer.src = url; }).catch((error) => {
  api.errors.push(String(error));
  setStatus("error", `could not read the embedded model: ${error}`);
});
