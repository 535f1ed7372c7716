package config

import (
	"bytes"
	"text/template"
)

// Template is the configuration file `sealpost init` writes: every key,
// documented, at its default unless init was told otherwise.
const Template = `# sealpost configuration. Every key is shown with its default (the
# listeners excepted: see [smtp]); delete what you do not change.
# Durations: 30s, 15m, 12h, 5d. Reload with SIGHUP (listen addresses and
# keys need a restart).

# Where the queue, spool, keys and database live. Keep it on a local disk.
# One gateway per directory: serve locks it (DATA_DIR/lock) and the CLI
# reaches the running gateway through DATA_DIR/control.sock.
data_dir = {{printf "%q" .DataDir}}

[org]
# Shown to recipients and in notifications.
name = {{printf "%q" .OrgName}}
# Mail for these domains is inbound (MX role); mail from them is outbound.
domains = [{{printf "%q" .Domain}}]
# Where accepted inbound mail goes: your mail host's inbound SMTP
# (for Exchange Online: <tenant>.mail.protection.outlook.com:25).
mail_host = "127.0.0.1:2526"
# Clients in these networks may relay outbound mail without SMTP AUTH: your
# provider's outbound connector addresses. Everyone else must authenticate.
connector_networks = ["127.0.0.0/8", "::1/128"]

[smtp]
# Name in the greeting, EHLO and Received headers. No product name or
# version is ever shown.
hostname = {{printf "%q" .Hostname}}
# The listeners below are on loopback and on ports of their own, so that
# this configuration starts beside a running "sealpost serve --dev" (which
# takes 2525, 2587 and 8080). For production, listen on the network: MX on
# port 25, submission on 587, the portal behind HTTPS on 443; ports under
# 1024 need root or "setcap cap_net_bind_service=+ep sealpost".
# MX role: accepts mail for org.domains from anyone. Production: "0.0.0.0:25".
inbound_listen = "127.0.0.1:10025"
# Connector/submission role: relays outbound for connectors and AUTH users.
# Production: "0.0.0.0:587" (or 25, as your provider's connector needs).
outbound_listen = "127.0.0.1:10587"
# Largest message accepted, in bytes (answer: 552 5.3.4).
max_message_bytes = 157286400
# Recipients per message.
max_recipients = 500
# Open sessions in all, and from one address (more get 421 4.7.0).
max_sessions = 2000
max_sessions_per_ip = 50
# Longest line accepted (RFC 5321 says 1000; many clients send more).
max_line_length = 4096
# Time allowed for each command, for each read during DATA (RFC 5321
# §4.5.3.2), and for a whole session.
command_timeout = "5m"
data_timeout = "10m"
session_timeout = "30m"
# Text after "ESMTP" in the greeting. Empty (the default) names nothing:
# telling the world what guards the domain helps attackers.
banner = ""
# PEM certificate and key for STARTTLS. Empty: the self-signed pair made by
# init in data_dir/keys (replace it for production).
tls_cert = ""
tls_key = ""

[outbound]
# "host:port": send all outbound mail there instead of looking up MX.
smarthost = ""
# Concurrent deliveries.
workers = 64
connect_timeout = "30s"
command_timeout = "5m"
# Retries after a temporary failure: first wait, doubling up to retry_max,
# with jitter; after max_age the sender gets a bounce (DSN).
retry_initial = "5m"
retry_max = "4h"
max_age = "5d"
# DNS server "host:port" for MX lookups; empty: the system's resolver.
resolver = ""
# TLS to org.mail_host: opportunistic, required or none.
mail_host_tls = "opportunistic"
# Recipient domains that get mail only over TLS with a certificate that
# verifies for the MX host, or not at all (deferred): "nhs.net", "*.gov.uk"
# (every domain below gov.uk), "!lab.gov.uk" (an exception, always wins).
# DANE and MTA-STS are used first where a domain publishes them.
require_tls_domains = []
# Believe the resolver's DNSSEC "authentic data" bit, which DANE needs.
# Set it only when outbound.resolver validates DNSSEC and cannot be
# tampered with on the way: a local unbound on 127.0.0.1 (docs/tls.md).
# false: DANE is never used (MTA-STS and the list still are).
dnssec_trust = false
# Honour recipients' MTA-STS policies (RFC 8461), cached in the database.
mta_sts = true
# Mail the policy sends with require-tls goes only over TLS with a
# certificate that verifies for the host, against the system's CAs and
# those in this PEM file (empty: the system's only).
ca_file = ""
# A message with the header "TLS-Required: No" (RFC 8689 §5) asks to be
# delivered even where the receiver's MTA-STS or DANE policy would refuse
# the session. "ignore" (default): such policies hold for every message.
# "honour": the header lowers them; mail our policy sends with
# require-tls, and REQUIRETLS mail, stay protected either way.
tls_required_no = "ignore"

[queue]
# How long finished messages stay listed (queue show, trace).
keep_delivered = "7d"
# How often the queue looks for retries that are due.
poll_interval = "5s"

[dkim]
# Outbound mail whose From: is in org.domains is DKIM-signed. Selector:
# empty means the one made at first start (sYYYYMM). Algorithm: rsa-2048
# (verified everywhere), rsa-3072, ed25519 (RFC 8463; cheap, but some large
# providers ignore it), rsa-2048+ed25519 (both), or off.
selector = ""
algorithm = "rsa-2048"

[keys]
# The 32-byte key that seals the spool and stored mail. Empty: made in
# data_dir/keys/master.key at first start. Put it on another volume (or a
# secrets mount) so that a copy of the data directory or its backup reveals
# no mail; back it up separately, or sealed mail cannot be read.
master_key_file = ""

[web]
# Portal, console, API and /metrics (see [smtp] on the port).
listen = "127.0.0.1:9080"
# Base of links in notification mails. When it is https://, cookies are
# Secure and __Host- prefixed and Strict-Transport-Security is sent (see
# docs/internet.md for putting the portal on the internet).
public_url = "http://127.0.0.1:9080"
# PEM certificate and key: set, the web listener speaks HTTPS (TLS 1.2+,
# AEAD cipher suites only). Both are read again on SIGHUP, so a renewed
# certificate needs no restart. init made a self-signed pair for a first
# test; use a certificate browsers trust for the public portal.
# tls_cert = "{{.DataDir}}/keys/tls-cert.pem"
# tls_key = "{{.DataDir}}/keys/tls-key.pem"
tls_cert = ""
tls_key = ""
# Plain-HTTP listener that only redirects to public_url ("" : none), e.g.
# "0.0.0.0:80" beside an HTTPS listen on 443.
redirect_listen = ""
# Reverse proxies in front of this listener (CIDRs). Only from these are
# X-Forwarded-For (the client address for rate limits, lock-outs and the
# audit) and X-Forwarded-Proto believed. Empty: the peer is the client.
trusted_proxies = []
# Who may read /metrics and /api/openapi.json without an API token (others
# get 404): by client address, after trusted_proxies.
metrics_networks = ["127.0.0.0/8", "::1/128"]
# Only these clients reach the console (/console) and the REST API (/api);
# others get 404. Empty: no restriction here (use a firewall or proxy).
console_networks = []

[dlp]
# Inspect outbound mail and apply the policy. Turn off only to measure, or
# on a gateway that handles inbound mail alone: off, nothing is protected.
enabled = true
# At most this much of one archive, Office document or PDF is read into
# memory to be inspected; larger ones are reported "unscannable".
max_attachment_bytes = 67108864
# Vocalink's modulus tables check sort code and account number pairs. A
# newer published valacdos.txt (and scsubtab.txt) can be used instead of the
# built-in ones without a rebuild; "sealpost dlp info" shows which is in use.
vocalink_valacdos_file = ""
vocalink_scsubtab_file = ""

# Microsoft Purview sensitivity labels (by name or id, as Outlook writes them
# in the msip_labels header) and the marking they stand for. Labels named
# like a marking ("OFFICIAL-SENSITIVE", "Official Sensitive") need no entry.
[dlp.labels]
# "a9f0a8e2-1c2b-4d4e-9f00-000000000001" = "OFFICIAL-SENSITIVE"

# Detectors of your own, any number; findings report them by name.
# [[dlp.custom]]
# name = "project-falcon"
# keywords = ["Project Falcon", "FALCON-7"]   # case-insensitive words or phrases
# patterns = ['\bFAL-[0-9]{6}\b']           # regular expressions (RE2 syntax)

[policy]
# The rules of the default policy for a UK public body (see
# "sealpost policy rules"): private keys are rejected; personal data
# or OFFICIAL-SENSITIVE to an outside address goes through the secure portal
# unless the recipient's domain is in tls_assured_domains (then: verified
# TLS); look-alike domains, too many visible external addresses, uninspectable
# content and a first message with sensitive content to a new domain are held
# for the sender to confirm; 100+ personal identifiers are quarantined.
builtin_rules = true
# Built-in rules to switch off, by name.
disable = []
# Subject words with which a sender asks for protection; removed before delivery.
sender_keywords = ["[secure]", "[encrypt]"]
# Domains ("nhs.net") or suffixes (".police.uk") whose mail servers are known
# to enforce TLS: for them verified TLS counts as enough protection.
tls_assured_domains = []
# Partners' domains: addresses at domains that look like these or like
# org.domains (examp1e.gov.uk) are held.
partner_domains = []
# More external addresses than this in To/Cc make a message "bulk" (0: off):
# hold it for the sender (advice: use Bcc), or split it into one message per
# outside recipient whose To: shows only them.
bulk_threshold = 10
bulk_action = "hold"
# A held message the sender neither confirms nor cancels is dropped after this.
hold_timeout = "3d"
# Quarantined mail the operator does not release is deleted after this.
quarantine_retention = "30d"

# Rules of your own, any number, evaluated after the built-in ones; the most
# protective action of all matching rules wins. "when" is a CEL expression
# over message, classification, findings, confidence, personal, sensitive,
# sender and recipient; actions: deliver, require-tls, encrypt, encrypt-pgp,
# encrypt-smime, portal, hold, quarantine, reject.
# [[policy.rule]]
# name = "falcon-stays-inside"
# when = '"project-falcon" in findings && recipient.external'
# action = "quarantine"
# reason = "Project Falcon material may not leave the organisation"

[encryption]
# Recipient-key encryption: the actions encrypt-pgp (OpenPGP, PGP/MIME),
# encrypt-smime and encrypt (whichever the recipient has, see prefer). A
# recipient's key comes from the key store ("sealpost keys add"), then the
# recipient domain's Web Key Directory, then keys harvested from signed mail
# that passed DMARC; "sealpost keys lookup ADDRESS" shows the ladder. With no
# usable key (none, revoked, expired) the message goes to the portal and the
# decision says why. Off: the encrypt actions use the portal.
enabled = true
# For action encrypt, when a recipient has both: "pgp" or "smime".
prefer = "pgp"
# Ask the recipient domain's Web Key Directory (HTTPS, verified certificate).
wkd = true
wkd_timeout = "10s"
# Keys found by discovery are fetched again when older than this.
key_max_age = "24h"
# Publish staff keys ("sealpost keys add --staff") at /.well-known/openpgpkey/.
serve_wkd = true
# Copy From, To, Subject, Date into the encrypted part (RFC 9788).
protect_headers = false
# Org domains whose encrypted mail is signed with the domain's OpenPGP key
# (made at first use as data_dir/keys/openpgp-DOMAIN.key; give partners
# openpgp-DOMAIN.asc).
# Inbound PGP/MIME to staff keys whose secret keys are in
# data_dir/keys/openpgp-staff/ is decrypted before it reaches the mail host.
sign_domains = []
# Recipient domains ("*" for all) whose encrypted mail (OpenPGP and S/MIME)
# is also sealed into the portal and carries a short plaintext preamble with
# the portal link, for recipients whose mail client cannot decrypt.
# Needs the portal.
preamble_domains = []

[portal]
# The secure portal, where outside recipients read mail the policy seals
# ("portal" action): they prove their address with a one-time code mailed
# to them, then read, download and reply in the browser.
enabled = true
# How long a sealed message can be read (senders may change it, up to max_expiry).
expiry = "30d"
max_expiry = "365d"
# A recipient's session, and "remember this browser".
session = "1h"
remember = "30d"
# One-time codes: valid this long, this many tries, this many sent per hour.
code_validity = "15m"
code_attempts = 5
codes_per_hour = 5
# Leave the subject out of notifications.
hide_subject = false
# false: notifications carry no link, only a reference to enter at
# web.public_url/r. no_link_domains: the same for recipients at these domains
# (partners whose staff are trained never to click links in mail).
link_in_notice = true
no_link_domains = []
# From: of notifications and codes (empty: noreply@ the first org domain).
notice_from = ""
# Header colour of portal pages and notifications (white text on it must
# reach 4.5:1 contrast), and a PNG logo (at most 256 KiB) shown beside the
# organisation's name.
brand_colour = "#1d4f91"
logo_file = ""
# Largest secure reply, attachments included.
max_reply_bytes = 26214400

[audit]
# Audit events (portal accesses, policy holds, operators' actions) older
# than this are removed; what remains still verifies. Events name
# addresses, client IP addresses and user agents: keep them no longer than
# your records policy needs.
retention = "2190d"
# Every signed checkpoint of the audit log is also appended here (and sent
# to the system log), so that someone who can write to the database cannot
# delete events and their checkpoints unnoticed: "sealpost audit verify"
# compares the two. Put it on another volume (or a remote, append-only
# mount) and keep it as long as the events. Empty: data_dir/audit-witness.log.
witness_file = ""

[dns]
# What "sealpost dns records" tells you to publish (GOV.UK email security
# guidance; reports go to NCSC Mail Check by default).
# Other senders of your domain's mail, as SPF mechanisms.
spf_extra = []
dmarc_policy = "reject"
dmarc_rua = "mailto:dmarc-rua@dmarc.service.gov.uk"
tls_rpt_rua = "mailto:tls-rua@mailcheck.service.ncsc.gov.uk"
# MTA-STS policy mode served at /.well-known/mta-sts.txt: enforce or testing.
mta_sts_mode = "enforce"

[inbound]
# Content checks of inbound mail (docs/inbound-threats.md). Dangerous
# attachments (programs, scripts, shortcuts, disk images, OneNote, macros,
# encrypted archives, HTML smuggling, ambiguous MIME) are always looked
# for: "quarantine" or "reject" (550 5.7.1).
dangerous_attachments = "quarantine"
# clamd to scan every decoded part with: "unix:/run/clamav/clamd.ctl" or
# "127.0.0.1:3310"; empty: no antivirus. A virus is refused (550 5.7.1).
clamd = ""
# When clamd gives no verdict: tempfail (451 4.7.1, the sender retries),
# quarantine or deliver.
clamd_unavailable = "tempfail"
# Display names mail from outside may not use (staff, the organisation);
# names seen on outbound mail are protected too.
protected_names = []
# Impersonation (a protected name from outside, a look-alike domain, a
# Reply-To elsewhere from a first-time sender): tag (an
# X-Impersonation-Warning header) or quarantine.
impersonation = "tag"
# Addresses that receive DMARC aggregate and TLS reports (the rua of your
# DMARC and TLS-RPT records): reports in mail to them are summed up per
# sending source in the console (Reports from others). The mail is
# delivered as usual.
report_addresses = []
# Authenticate mail arriving from the Internet: SPF, DKIM, ARC and DMARC
# (docs/inbound-auth.md). Delivered mail carries Authentication-Results
# with authserv-id = smtp.hostname (any such field that arrives is
# removed first). Lookups go to outbound.resolver.
authenticate = true
# DMARC discovery: "rfc9989" (DNS tree walk, np=, psd=, t=; pct= ignored)
# or "rfc7489" (public suffix list, as before May 2026).
dmarc_mode = "rfc9989"
# What p=reject does, and what a message claiming one of org.domains from
# outside without passing authentication gets whatever those domains
# publish: "reject" (550 5.7.1) or "quarantine" (held for an admin).
# p=quarantine always quarantines; p=none delivers with the results.
dmarc_reject_action = "reject"
# Seal every message passed to the mail host with an ARC set of the first
# org domain (RFC 8617), so that Exchange Online ("trusted ARC sealers")
# and Google Workspace ("inbound gateway") honour these results. Needs an
# RSA DKIM key (dkim.algorithm rsa-2048, rsa-3072 or rsa-2048+ed25519).
arc_seal = true

[tlsrpt]
# TLS-RPT (RFC 8460) reports we send: once a day, at a random hour after
# midnight UTC, each domain we delivered to that publishes a _smtp._tls
# record gets one gzip JSON report of the day before (TLS successes and
# failures per policy), by mail or HTTPS POST as its record asks.
send = false
# The report's organization-name (empty: org.name) and contact-info
# (empty: postmaster@ the first org domain).
organization = ""
contact = ""
# From of report mail (empty: tlsrpt-noreply@ the first org domain); it
# must be in an org domain, so that the report is DKIM-signed.
from = ""
# At most this many reports a day, each at most this many bytes compressed.
max_reports = 1000
max_report_bytes = 1048576
# A report address that bounced gets no report for this long.
suppress_for = "7d"

[smime]
# Encryption to recipients' S/MIME certificates (policy action
# encrypt-smime). A recipient without a usable certificate (none, expired,
# revoked, no chain to the anchors) gets the portal, and the audit log says why.
enabled = false
# PEM file of the CA certificates recipients' certificates must chain to
# (required when enabled; the system's web roots are never used), and
# optional intermediates.
trust_anchors = ""
intermediates = ""
# Recipients' certificates (PEM or DER files), besides the key store.
certificates_dir = "smime/certs"
# aes-256-gcm (AuthEnvelopedData, S/MIME 4.0) or aes-256-cbc (older clients).
cipher = "aes-256-gcm"
# RSA recipients: oaep (RSAES-OAEP with SHA-256) or pkcs1v15 (legacy clients).
rsa_key_transport = "oaep"
# require: a certificate whose revocation status no current CRL or OCSP
# response gives is not used; best-effort: it is used and the audit says
# "revocation unknown"; off.
revocation = "require"
# offline = true: never fetch CRLs or OCSP; only those in crl_dir count
# (CRLs, and OCSP responses as *.ocsp files).
offline = false
crl_dir = "smime/crls"
# Also match the subject's emailAddress when a certificate has no
# subjectAltName address (older CAs).
match_subject_email = false
# Sign every encrypted message first with this certificate and key (PEM).
sign_cert = ""
sign_key = ""

[log]
# debug, info, warn or error; json or text. Message bodies, passwords,
# codes and keys are never logged.
level = "info"
format = "json"
`

// TemplateData fills Template.
type TemplateData struct {
	DataDir  string
	OrgName  string
	Domain   string
	Hostname string
}

// Render returns the documented configuration file for d.
func Render(d TemplateData) ([]byte, error) {
	t, err := template.New("config").Parse(Template)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, d)
	return b.Bytes(), err
}
