"""A QuickBooks Online simulator: Intuit's OAuth, the Accounting API subset qbsync uses, webhooks.

`create_simulator_app(config)` builds the ASGI app, `server.serve()` runs it, and
`testing.running_simulator()` runs it inside a test's event loop with direct access to its state.
URL shapes are Intuit's, so a client only changes hosts; `/_sim/...` is the simulator's own admin
API (consent without HTML, a person's edits in QuickBooks, faults, clock, inspection).

Where the simulator simplifies Intuit's behaviour:

* State lives in memory, per process. Responses are JSON whatever `Accept` says (only the 429
  body is XML, as Intuit's gateway sends it). `minorversion` is accepted and ignored (all is 75).
* Time: `time_scale` speeds up every Intuit duration (token lifetimes, limit windows, webhook
  retries, `api_latency`, the CDC window) and `/_sim/clock/advance` jumps ahead; fault delays and
  the webhook receiver's timeout are real seconds. Token bodies still say `expires_in: 3600`.
  Timestamps use fixed offsets (US -08:00, GB +00:00): no daylight saving time.
* OAuth: no `id_token`, userinfo or JWKS. Every refresh rotates the refresh token; the ones it
  replaces keep working for `refresh_grace`. Revoking either token of a connection revokes it.
* Entities: Customer, Vendor, Item (Service and NonInventory only), Account, Invoice, Payment,
  Bill and Purchase are writable; CompanyInfo, Preferences, TaxCode and TaxRate are read-only (no
  TaxService). No employees, multicurrency, sub-customers, discounts, group or shipping lines,
  bill payments or attachments. Customer Balance stays at the opening balance. Deactivated
  customers and vendors get " (deleted)" appended, which frees the name. Names are not checked
  for the colons, tabs and newlines QBO refuses.
* Tax: US automated sales tax uses the company's one code (8.25%) whatever the addresses; a
  non-taxable customer pays none; an explicit `TxnTaxDetail.TotalTax` is honoured. GB VAT is
  rounded once per rate on the rate's total; with TaxInclusive a line's Amount is taken as gross
  (QBO's rewriting of Amount to the net figure is not modelled), and a code with several rates
  gives the last one the cent that rounding leaves. US purchases carry no tax. A sparse update
  that sends no Line, TxnTaxDetail or CustomerRef keeps an invoice's tax as it was (an override
  included; how QBO treats this is not documented); other writes let AST compute again.
* Payments: each line links exactly one invoice; paying more than an invoice's open balance, or
  applying a negative amount, is refused; voiding an invoice unapplies its payments; an invoice
  with payments can't be deleted.
* Duplicate DocNumber (6140) is checked for invoices only; without custom transaction numbers
  (the US companies) invoices are numbered from 1001.
* Query: any field may be filtered (real QBO refuses some with 4001); unknown fields match nothing;
  a reference compares its `value`, an address object (`PrimaryEmailAddr`) its `Address`.
* Batch items run in order and see earlier items' writes; no `optionsData`, void or CDCQuery items.
* CDC: past `cdc_max_objects` the oldest changes are kept. `requestid` answers are remembered
  for the life of the process, faults included; injected faults and throttles are not remembered.
  Intuit's length limits (50 characters, 36 for a batch, `bId` 10 with a requestid) are not
  enforced, and a repeat is always a replay, never fault 600.
* Limits: sliding one-minute windows per company; Intuit's "10 per second per company and app"
  is modelled as 10 requests in flight, and that limit refuses at once; the all-apps batch limit
  (120/min), the 800/min combined limit and CorePlus metering are not modelled.
* Webhooks go only to companies with a live connection, for every change (including an invoice's
  balance moving after a payment); one ordered queue per simulator, so a failing batch holds later
  ones. Name-list deletes are reported as Delete; there is no Merge or Emailed. The admin API has
  no authentication.
"""

from qbsync.simulator.app import create_simulator_app
from qbsync.simulator.config import CompanySpec, LimitsConfig, SimulatorConfig

__all__ = ["CompanySpec", "LimitsConfig", "SimulatorConfig", "create_simulator_app"]
