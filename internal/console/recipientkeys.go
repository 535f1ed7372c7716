package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"sealpost/internal/keyring"
	"sealpost/internal/store"
	"sealpost/internal/web"
)

// Recipients' keys on the keys page: the same key store and discovery
// ladder as `sealpost keys` (list, lookup ADDRESS, add, remove), the
// changes for admins only and audited as key.added / key.removed, as the
// command does.

// keysData adds the key store's keys (and, for ?lookup=ADDRESS, the
// ladder's answer) to the keys page's data.
func (s *Service) keysData(r *http.Request, data map[string]any) error {
	if s.Keyring == nil {
		return nil
	}
	keys, err := s.Keyring.List(r.Context())
	if err != nil {
		return err
	}
	data["KeyStore"], data["RecipientKeys"] = true, keys
	if a := strings.TrimSpace(r.URL.Query().Get("lookup")); a != "" {
		data["Lookup"] = a
		if !strings.Contains(a, "@") || len(a) > 254 {
			data["LookupProblem"] = "That is not an email address: type one like bob@partner.example."
			return nil
		}
		ans, err := s.Keyring.Lookup(r.Context(), a, keyring.Options{All: true}) // every rung, as `keys lookup`
		if err != nil {
			return err
		}
		data["Answer"] = ans
	}
	return nil
}

func (s *Service) keysAdd(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the page and try again.")
		return
	}
	u, ok := s.need(w, r, "admin")
	if !ok {
		return
	}
	if s.Keyring == nil {
		s.fail(w, http.StatusNotFound, "No key store", "Recipient-key encryption is not set up on this gateway.")
		return
	}
	keys, err := s.Keyring.Add(r.Context(), []byte(r.PostFormValue("key")), false)
	if err != nil {
		s.keysPageWith(w, r, http.StatusUnprocessableEntity, "The key was not added: "+err.Error()+". Paste an OpenPGP certificate (armoured) or an X.509 certificate (PEM).")
		return
	}
	var added []string
	for _, k := range keys {
		if err := s.audit(r, "admin:"+u.Name, "key.added", k.Fingerprint, fmt.Sprintf("kind=%s alg=%s staff=false addrs=%s", k.Kind, k.Algorithm, strings.Join(k.Addresses, ","))); err != nil {
			s.Keyring.Remove(r.Context(), k.Fingerprint) // not recorded, so not kept
			s.fail(w, http.StatusServiceUnavailable, "Not done", "The audit log could not be written, so the key was not kept. Try again; if it keeps happening, check the gateway's log.")
			return
		}
		added = append(added, k.Fingerprint+" for "+strings.Join(k.Addresses, ", "))
	}
	s.keysPageWith(w, r, http.StatusOK, "Added "+strings.Join(added, "; ")+".")
}

func (s *Service) keysRemove(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the page and try again.")
		return
	}
	u, ok := s.need(w, r, "admin")
	if !ok {
		return
	}
	if s.Keyring == nil {
		s.fail(w, http.StatusNotFound, "No key store", "Recipient-key encryption is not set up on this gateway.")
		return
	}
	fpr := strings.ToUpper(strings.TrimSpace(r.PostFormValue("fingerprint")))
	if err := s.audit(r, "admin:"+u.Name, "key.removed", fpr, ""); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "Not done", "The audit log could not be written, so the key was kept. Try again; if it keeps happening, check the gateway's log.")
		return
	}
	if err := s.Keyring.Remove(r.Context(), fpr); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.keysPageWith(w, r, http.StatusNotFound, "No key "+fpr+" in the key store.")
			return
		}
		s.oops(w, err)
		return
	}
	s.keysPageWith(w, r, http.StatusOK, "Removed "+fpr+".")
}

// keysPageWith shows the keys page with notice (the outcome of a change).
func (s *Service) keysPageWith(w http.ResponseWriter, r *http.Request, status int, notice string) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	data := map[string]any{"Title": "Keys and DNS", "U": u, "CSRF": web.CSRFToken(w, r), "Notice": notice}
	if err := s.keysCommon(r, data); err != nil {
		s.oops(w, err)
		return
	}
	s.page(w, status, "console_keys.html", data)
}

func (s *Service) keysCommon(r *http.Request, data map[string]any) error {
	recs, err := s.DNSRecords()
	if err != nil {
		return err
	}
	data["Records"] = recs
	return s.keysData(r, data)
}
