"use strict";
// The QuickBooks card, played against the real API with a dev token (qbsync dev mode only).
const REASONS = {
  access_denied: "You declined the connection in QuickBooks. Nothing was linked.",
  authorization_failed: "QuickBooks reported an error during sign-in. Try connecting again.",
  invalid_state: "This sign-in link was unknown or already used. Start connecting again.",
  expired_state: "The sign-in took longer than 10 minutes. Start connecting again.",
  invalid_request: "QuickBooks sent back an incomplete answer. Start connecting again.",
  company_already_connected: "That QuickBooks company is connected to another organisation.",
  not_company_admin: "Only a QuickBooks company admin can connect apps. Ask an admin to connect.",
  token_exchange_failed: "QuickBooks did not complete the sign-in. Try again in a minute.",
  quickbooks_unavailable: "QuickBooks did not answer. Try again in a few minutes.",
  temporarily_unavailable: "qbsync is briefly unavailable. Try again in a minute.",
  consent_withdrawn: "QuickBooks was being disconnected while you signed in, which ended this sign-in. Connect again.",
  unexpected_error: "Something went wrong on our side. Try again; support has the details.",
};
const STATUS_TEXT = {
  connected: "Connected", not_connected: "Not connected",
  needs_reauth: "Needs reconnecting", disconnected: "Disconnected",
};
const ACCOUNT_LISTS = {
  income: "Income", expense: "Expense,Other Expense,Cost of Goods Sold",
  payable: "Accounts Payable", bank: "Bank,Credit Card",
};
const POLL_MS = 1500;
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("qbsync.devToken") || "";
let connection = null;
let references = null;
let suggestions = null;
// What the user typed in the QuickBooks panel's amount boxes, by invoice id: the poll redraws
// the panel every POLL_MS and would otherwise put the balance back mid-typing.
const typedAmounts = new Map();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function banner(kind, text) {
  const node = $("banner");
  node.className = "banner " + kind;
  node.textContent = text;
  node.hidden = false;
}

class ApiError extends Error {
  constructor(status, body) {
    const fields = (body.errors || []).map((e) => e.field).filter(Boolean);
    super((body.detail || "HTTP " + status) + (fields.length ? " (" + fields.join(", ") + ")" : ""));
    this.status = status;
    this.code = body.code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const payload = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

function formValues(form) {
  const values = {};
  for (const input of form.elements) {
    if (!input.name) continue;
    if (input.type === "checkbox") values[input.name] = input.checked;
    else if (input.value.trim() !== "") values[input.name] = input.value.trim();
  }
  return values;
}

// The signed-in user -------------------------------------------------------------------------

function showWho() {
  if (localStorage.getItem("qbsync.devOrg")) $("org").value = localStorage.getItem("qbsync.devOrg");
  if (localStorage.getItem("qbsync.devUser")) $("user").value = localStorage.getItem("qbsync.devUser");
  $("who-state").textContent = token ? "Signed in with a dev token for " + $("org").value + "." : "";
}

$("who").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/dev/token", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ org_id: $("org").value, user_id: $("user").value }) });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) { banner("bad", new ApiError(response.status, payload).message); return; }
  token = payload.token;
  localStorage.setItem("qbsync.devToken", token);
  localStorage.setItem("qbsync.devOrg", $("org").value);
  localStorage.setItem("qbsync.devUser", $("user").value);
  showWho();
  references = null;
  refresh();
});

// The card ------------------------------------------------------------------------------------

function showStatus(view) {
  connection = view;
  const connected = view.status === "connected";
  const status = $("status");
  status.dataset.status = view.status;
  status.textContent = STATUS_TEXT[view.status] + (view.company_name ? " — " + view.company_name : "");
  $("status-message").textContent = [view.message, view.reason].filter(Boolean).join(" ");
  const health = view.token_health;
  $("token-health").textContent = connected && health
    ? "Token health: access renews automatically" + (health.days_left !== null ? "; sign-in good for " + health.days_left + " more days" : "") +
      (health.last_refreshed_at ? "; last refreshed " + new Date(health.last_refreshed_at).toLocaleString() : "") + "."
    : "";
  $("connect").textContent = view.status === "not_connected" ? "Connect" : "Reconnect";
  $("connect").hidden = connected;
  for (const id of ["manage", "test", "disconnect"]) $(id).hidden = !connected;
  $("manage-panels").hidden = !connected;
}

async function refresh() {
  if (!token) { $("status").textContent = "Choose who you are first."; return; }
  try { showStatus(await api("GET", "/v1/quickbooks/connection")); }
  catch (error) { $("status").textContent = error.message; return; }
  if (connection.status === "connected") await loadManagement();
}

$("connect").addEventListener("click", async () => {
  try { window.location.assign((await api("POST", "/v1/quickbooks/connect")).authorization_url); }
  catch (error) { banner("bad", error.message); }
});

$("manage").addEventListener("click", () => $("settings-panel").scrollIntoView({ behavior: "smooth" }));

$("test").addEventListener("click", async () => {
  $("checks").replaceChildren(el("li", { className: "note" }, "Checking…"));
  try {
    const report = await api("POST", "/v1/quickbooks/test-connection");
    $("checks").replaceChildren(...report.checks.map((check) => el("li", { "data-check": check.name },
      el("span", { className: "outcome " + check.outcome }, check.outcome), " ", el("strong", {}, check.name), " — ", check.message)));
    banner(report.ok ? "ok" : "bad", report.ok ? "Every check passed." : "Some checks failed.");
  } catch (error) { $("checks").replaceChildren(); banner("bad", error.message); }
});

$("disconnect").addEventListener("click", async () => {
  if (!window.confirm("Disconnect QuickBooks? Syncing stops both ways; your data and mappings are kept.")) return;
  try { banner("info", (await api("DELETE", "/v1/quickbooks/connection")).message); await refresh(); }
  catch (error) { banner("bad", error.message); }
});

// Settings ------------------------------------------------------------------------------------

async function loadReferences() {
  const lists = {};
  for (const [name, types] of Object.entries(ACCOUNT_LISTS)) {
    lists[name] = (await api("GET", "/v1/quickbooks/accounts?limit=200&type=" + encodeURIComponent(types))).items;
  }
  lists.items = (await api("GET", "/v1/quickbooks/items?limit=200")).items;
  lists.taxCodes = (await api("GET", "/v1/quickbooks/tax-codes?limit=200")).items;
  lists.customers = (await api("GET", "/v1/quickbooks/customers?limit=200")).items;
  return lists;
}

function fillSelect(select, options, chosen) {
  select.replaceChildren(el("option", { value: "" }, "— none —"),
    ...options.map((option) => el("option", { value: option.id, selected: option.id === chosen }, option.label)));
}

async function loadSettings() {
  const saved = await api("GET", "/v1/quickbooks/settings");
  const form = $("settings");
  for (const select of form.querySelectorAll("select[data-list]")) {
    const accounts = references[select.dataset.list].map((a) => ({ id: a.id, label: a.name + (a.account_number ? " (" + a.account_number + ")" : "") }));
    fillSelect(select, accounts, saved[select.name]);
  }
  form.customer_sync_mode.value = saved.customer_sync_mode;
  form.expense_mode.value = saved.expense_mode;
  form.sync_start_date.value = saved.sync_start_date || "";
  form.reconcile_interval_minutes.value = saved.reconcile_interval_minutes;
  form.invoice_auto_push.checked = saved.invoice_auto_push;
  $("settings-state").textContent = saved.saved ? "Saved " + new Date(saved.updated_at).toLocaleString() + "." : "Defaults: not saved yet.";
}

async function saveSettings() {
  const values = formValues($("settings"));
  const body = {
    customer_sync_mode: values.customer_sync_mode, expense_mode: values.expense_mode,
    invoice_auto_push: values.invoice_auto_push,
    reconcile_interval_minutes: parseInt(values.reconcile_interval_minutes || "60", 10),
    sync_start_date: values.sync_start_date || null,
  };
  for (const name of ["default_income_account_id", "default_expense_account_id", "ap_account_id", "payment_account_id"]) body[name] = values[name] || null;
  try {
    await api("PUT", "/v1/quickbooks/settings", body);
    await loadSettings();
    banner("ok", "Settings saved" + (body.invoice_auto_push ? "; invoices are pushed automatically." : "."));
  } catch (error) { banner("bad", error.message); }
}

$("settings").addEventListener("submit", (event) => { event.preventDefault(); saveSettings(); });
$("enable").addEventListener("click", () => { $("settings").invoice_auto_push.checked = true; saveSettings(); });

// Mappings ------------------------------------------------------------------------------------

function platformData() {
  const client = formValues($("client-form"));
  const invoice = formValues($("invoice-form"));
  const expense = formValues($("expense-form"));
  return {
    clients: [{ id: client.client_id, name: client.name, email: client.email }],
    services: [{ id: invoice.service_id, name: invoice.service_name }],
    "tax-rates": invoice.tax_rate_id ? [{ id: invoice.tax_rate_id, name: invoice.tax_rate_name, rate: invoice.tax_rate }] : [],
    "expense-categories": expense.category_code ? [{ id: expense.category_code, name: expense.category_code }] : [],
  };
}

function qboOptions(kind) {
  if (kind === "clients") return references.customers.map((c) => ({ id: c.id, label: c.display_name }));
  if (kind === "services") return references.items.map((i) => ({ id: i.id, label: i.name }));
  if (kind === "tax-rates") return references.taxCodes.map((t) => ({ id: t.id, label: t.name + (t.sales_percent !== null ? " (" + t.sales_percent + " %)" : "") }));
  return references.expense.map((a) => ({ id: a.id, label: a.name }));
}

function suggestionFor(kind, entity) {
  const preview = suggestions || {};
  const pick = (list, key) => (list || []).find((row) => row.platform_id === entity.id);
  if (kind === "clients") {
    const row = pick(preview.clients);
    const customer = row && (row.customer || row.candidates[0]);
    return customer && { id: customer.qbo_id, why: row.rule + " match, confidence " + row.confidence };
  }
  if (kind === "services") {
    const row = pick(preview.services);
    const item = row && (row.item || row.candidates[0]);
    return item && { id: item.qbo_id, why: "same name" };
  }
  if (kind === "tax-rates") {
    const row = pick(preview.tax_rates);
    const code = row && (row.tax_code || row.candidates[0]);
    return code && { id: code.qbo_id, why: "same rate, " + entity.rate + " %" };
  }
  const account = references.expense.find((a) => (a.name || "").toLowerCase().includes(entity.id.toLowerCase()));
  return account && { id: account.id, why: "name contains \u201c" + entity.id + "\u201d" };
}

async function loadSuggestions() {
  try { suggestions = await api("POST", "/v1/quickbooks/preview", await previewBody()); }
  catch (error) { suggestions = null; }
}

async function loadMappings() {
  const data = platformData();
  const rows = [];
  for (const kind of ["clients", "services", "tax-rates", "expense-categories"]) {
    const mapped = Object.fromEntries((await api("GET", "/v1/quickbooks/mappings/" + kind + "?limit=200")).items.map((m) => [m.platform_id, m]));
    for (const entity of data[kind]) {
      const current = mapped[entity.id];
      const suggestion = suggestionFor(kind, entity);
      const options = qboOptions(kind);
      const select = el("select", { "aria-label": "QuickBooks match for " + entity.name });
      fillSelect(select, options, current ? current.qbo_id : suggestion && suggestion.id);
      const suggestedName = suggestion && (options.find((o) => o.id === suggestion.id) || {}).label;
      rows.push(el("tr", { "data-mapping": kind + ":" + entity.id },
        el("td", {}, kind),
        el("td", {}, entity.name, el("div", { className: "note" }, entity.id)),
        el("td", {}, select, suggestedName ? el("div", { className: "suggested" }, "Suggested: " + suggestedName + " (" + suggestion.why + ")") : null),
        el("td", {}, el("button", { className: "small", onclick: () => saveMapping(kind, entity, select.value) }, "Map")),
        el("td", { className: "mapped" }, current ? "→ " + (current.qbo_name || current.qbo_id) + " (" + current.source + ")" : "not mapped")));
    }
  }
  $("mapping-rows").replaceChildren(...rows);
}

async function saveMapping(kind, entity, qboId) {
  if (!qboId) { banner("bad", "Pick what " + entity.name + " maps to first."); return; }
  const body = { qbo_id: qboId };
  if (kind === "tax-rates" && connection.country !== "US") body.rate = entity.rate;
  try {
    const saved = await api("PUT", "/v1/quickbooks/mappings/" + kind + "/" + encodeURIComponent(entity.id), body);
    banner("ok", entity.name + " now maps to " + (saved.qbo_name || saved.qbo_id) + ".");
    await loadMappings();
  } catch (error) { banner("bad", error.message); }
}

// Preview -------------------------------------------------------------------------------------

function invoiceForm() {
  return { ...formValues($("client-form")), ...formValues($("invoice-form")) };
}

async function previewBody() {
  return api("POST", "/dev/platform/invoices/preview-body", invoiceForm());
}

function renderPreview(result) {
  const blocks = [];
  for (const invoice of result.invoices) {
    const differs = new Set(invoice.differences.map((d) => d.field));
    const qbo = invoice.quickbooks_totals;
    const row = (label, field) => el("tr", { className: differs.has(field) ? "differs" : null, "data-total": field },
      el("th", {}, label), el("td", { className: "num" }, invoice.platform_totals[field]),
      el("td", { className: "num" }, qbo ? qbo[field] : "—"));
    blocks.push(el("div", { className: "preview-invoice", "data-invoice": invoice.platform_id },
      el("h3", {}, (invoice.number || invoice.platform_id) + " → " + (invoice.customer.customer ? invoice.customer.customer.display_name : "a new customer") + " (" + invoice.customer.action + ")"),
      el("table", { className: "totals" },
        el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", { className: "num" }, "Platform"), el("th", { className: "num" }, "QuickBooks"))),
        el("tbody", {}, row("Subtotal", "subtotal"), row("Tax", "tax_total"), row("Total", "total"))),
      invoice.differences.map((d) => el("p", { className: "warn" }, d.field + ": platform " + d.platform + ", QuickBooks " + d.quickbooks + " — " + d.reason)),
      invoice.blocked_by.map((b) => el("p", { className: "fail" }, "Blocked: " + b.message)),
      invoice.notes.map((n) => el("p", { className: "note" }, n))));
  }
  const references = [
    ...result.services.map((s) => "Service " + s.name + ": " + s.status + (s.item ? " → " + s.item.name : "")),
    ...result.tax_rates.map((t) => "Tax rate " + t.name + ": " + t.status + (t.tax_code ? " → " + t.tax_code.name : "")),
  ];
  blocks.push(el("ul", { className: "note" }, references.map((text) => el("li", {}, text))));
  $("preview-result").replaceChildren(...blocks);
}

$("preview").addEventListener("click", async () => {
  try { suggestions = await api("POST", "/v1/quickbooks/preview", await previewBody()); renderPreview(suggestions); }
  catch (error) { banner("bad", error.message); }
});

// Sync log ------------------------------------------------------------------------------------

const RETRYABLE = new Set(["failed", "not_pushed", "ignored", "held"]);
const IGNORABLE = new Set(["failed", "not_pushed", "held", "pending"]);

async function recordAction(record, action) {
  try {
    await api("POST", "/v1/quickbooks/sync/records/" + record.kind + "/" + encodeURIComponent(record.platform_id) + "/" + action);
    banner("info", (action === "retry" ? "Pushing " : "Set aside: ") + record.kind + " " + record.platform_id + ".");
    await loadLog();
  } catch (error) { banner("bad", error.message); }
}

async function loadLog() {
  const query = new URLSearchParams({ limit: "50" });
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  if ($("filter-kind").value) query.set("kind", $("filter-kind").value);
  const page = await api("GET", "/v1/quickbooks/sync/records?" + query);
  $("log-rows").replaceChildren(...page.items.map((record) => el("tr", { "data-record": record.kind + ":" + record.platform_id, "data-status": record.status },
    el("td", {}, record.kind + " ", el("code", {}, record.platform_id)),
    el("td", {}, el("span", { className: "status " + record.status }, record.status)),
    el("td", {}, record.qbo_id ? (record.qbo_doc_number ? record.qbo_doc_number + " · " : "") + "#" + record.qbo_id : ""),
    el("td", { className: "payment" }, record.payment_status ? el("span", { className: "status " + record.payment_status }, record.payment_status) : ""),
    el("td", { className: "message" }, record.last_error ? el("span", { className: "error-message" }, record.last_error.message) : "",
      record.warnings.map((w) => el("div", { className: "warn" }, w.message))),
    el("td", {}, RETRYABLE.has(record.status) ? el("button", { className: "small", onclick: () => recordAction(record, "retry") }, "Retry") : null,
      IGNORABLE.has(record.status) ? el("button", { className: "small", onclick: () => recordAction(record, "ignore") }, "Ignore") : null))));
}

$("filter-status").addEventListener("change", loadLog);
$("filter-kind").addEventListener("change", loadLog);
$("reconcile").addEventListener("click", async () => {
  try { await api("POST", "/v1/quickbooks/sync/reconcile"); banner("info", "Reconciling with QuickBooks."); }
  catch (error) { banner("bad", error.message); }
});

// The platform panel --------------------------------------------------------------------------

async function sendPlatform(path, body, what) {
  try {
    const sent = await api("POST", "/dev/platform/" + path, body);
    $("platform-state").textContent = "Sent " + sent.types.join(", ") + ": " + sent.accepted + " stored, " + sent.duplicates + " already known.";
    await loadLog().catch(() => {});
  } catch (error) { $("platform-state").textContent = what + " refused: " + error.message; }
}

function onSubmit(id, handler) {
  $(id).addEventListener("submit", (event) => { event.preventDefault(); handler(); });
}
onSubmit("client-form", () => sendPlatform("clients", formValues($("client-form")), "The client"));
onSubmit("invoice-form", () => sendPlatform("invoices", invoiceForm(), "The invoice"));
onSubmit("expense-form", () => sendPlatform("expenses", formValues($("expense-form")), "The expense"));
onSubmit("payment-form", () => sendPlatform("payments", formValues($("payment-form")), "The payment"));

// The QuickBooks panel ------------------------------------------------------------------------

async function accountant(method, path, body, done, invoiceId) {
  try {
    await api(method, "/dev/accountant/" + path, body);
    typedAmounts.delete(invoiceId);
    $("quickbooks-state").textContent = done;
    await loadQuickBooks();
  } catch (error) { $("quickbooks-state").textContent = error.message; }
}

function showInvoices(bodies) {
  const table = $("qbo-invoices");
  for (const body of table.querySelectorAll("tbody")) body.remove();
  table.append(...bodies);
}

async function loadQuickBooks() {
  let listed;
  try { listed = await api("GET", "/dev/accountant/invoices"); }
  catch (error) { $("quickbooks-state").textContent = error.message; showInvoices([]); return; }
  showInvoices(listed.items.map((invoice) => {
    const amount = el("input", { value: typedAmounts.has(invoice.id) ? typedAmounts.get(invoice.id) : invoice.balance, size: "6",
      "aria-label": "Payment amount for " + (invoice.doc_number || invoice.id), oninput: (event) => typedAmounts.set(invoice.id, event.target.value) });
    const last = invoice.payment_ids[invoice.payment_ids.length - 1];
    const actions = invoice.voided ? [] : [amount,
      el("button", { className: "small", onclick: () => accountant("POST", "payments", { invoice_id: invoice.id, amount: amount.value }, "Payment recorded in QuickBooks.", invoice.id) }, "Record payment"),
      last ? el("button", { className: "small", onclick: () => accountant("DELETE", "payments/" + last, undefined, "Payment deleted in QuickBooks.", invoice.id) }, "Delete payment") : null,
      el("button", { className: "small", onclick: () => accountant("POST", "invoices/" + invoice.id + "/void", undefined, "Invoice voided in QuickBooks.", invoice.id) }, "Void")];
    return el("tbody", { "data-qbo-invoice": invoice.doc_number || invoice.id },
      el("tr", {},
        el("td", {}, (invoice.doc_number || "#" + invoice.id) + " · " + (invoice.customer || "") + (invoice.voided ? " · voided" : "")),
        el("td", { className: "num" }, invoice.total),
        el("td", { className: "num balance" }, invoice.balance)),
      el("tr", { className: "qbo-actions" }, el("td", { colspan: "3" }, actions)));
  }));
}

// Events qbsync sent --------------------------------------------------------------------------

function eventSummary(event) {
  const data = event.data;
  if (event.type === "quickbooks.invoice.payment_updated") return data.invoice_id + ": " + data.status + " (paid " + data.amount_paid + ", balance " + data.balance + ")";
  if (event.type === "quickbooks.record.synced" || event.type === "quickbooks.record.failed") return [data.kind, data.platform_id, data.qbo_id ? "→ #" + data.qbo_id : "", data.message || ""].join(" ");
  if (event.type === "quickbooks.connection.updated") return data.status + (data.company_name ? " — " + data.company_name : "");
  return JSON.stringify(data).slice(0, 120);
}

async function loadEvents() {
  const received = await api("GET", "/dev/platform/events");
  $("events").replaceChildren(...received.items.map((event) => el("li", { "data-type": event.type },
    el("span", { className: "verified" }, event.signature_verified ? "✓ signature verified" : "unverified"), " ",
    el("code", {}, event.type.replace("quickbooks.", "")), " ", new Date(event.received_at).toLocaleTimeString(),
    el("div", {}, eventSummary(event)))));
}

// Loading and polling -------------------------------------------------------------------------

async function loadManagement() {
  try {
    if (!references) references = await loadReferences();
    await loadSettings();
    if (!suggestions) await loadSuggestions();
    await loadMappings();
    await loadLog();
    await loadQuickBooks();
  } catch (error) { banner("bad", error.message); }
}

function pollFailed(error) {
  // A token that expired while the page was open: every poll is refused from then on, and the
  // page would go quietly stale. Other failures are passing (the next poll tries again).
  if (error.status === 401) banner("bad", error.message + " Use a dev token again.");
}

async function poll() {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (!token) continue;
    await loadEvents().catch(pollFailed);
    if (connection && connection.status === "connected") {
      await loadLog().catch(pollFailed);
      await loadQuickBooks().catch(pollFailed);
    }
  }
}

async function landed() {
  const params = new URLSearchParams(window.location.search);
  const outcome = params.get("quickbooks");
  window.history.replaceState(null, "", window.location.pathname);
  showWho();
  if (outcome === "error") {
    banner("bad", REASONS[params.get("reason")] || "Connecting did not finish: " + params.get("reason"));
  } else if (outcome === "confirm") {
    banner("info", "Linking your QuickBooks company…");
    try {
      const view = await api("POST", "/v1/quickbooks/connect/confirm", { handle: params.get("handle") });
      banner("ok", "Connected to " + (view.company_name || "QuickBooks") + ".");
    } catch (error) { banner("bad", error.message); }
  }
  await refresh();
  loadEvents().catch(() => {});
  poll();
}
landed();
