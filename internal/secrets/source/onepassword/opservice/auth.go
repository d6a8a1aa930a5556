package opservice

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
)

var b64std = base64.RawStdEncoding

func (s *Service) routes() {
	m := s.mux
	m.HandleFunc(RouteAuthStart, s.authStart)
	m.HandleFunc(RouteAuth, s.authExchange)
	m.HandleFunc(RouteConfirmKey, s.confirmKey)
	m.HandleFunc(RouteAuthComplete, s.withSession(s.authComplete))
	m.HandleFunc(RouteKeysets, s.withSession(s.keysets))
	m.HandleFunc(RouteVaults, s.withSession(s.listVaults))
	m.HandleFunc(RouteOverviews, s.withSession(s.overviews))
	m.HandleFunc(RouteBatch, s.withSession(s.batch))
	m.HandleFunc(RouteItem, s.withSession(s.oneItem))
	m.HandleFunc(RouteFile, s.withSession(s.download))
	m.HandleFunc(RouteSignedFile, s.withSession(s.download))
	m.HandleFunc(RouteVault, s.withSession(s.oneVault))
	m.HandleFunc(RoutePatchItems, s.withSession(s.patchItems))
	m.HandleFunc(RouteUpload, s.withSession(s.upload))
}

func readJSON(r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	return err == nil && json.Unmarshal(b, v) == nil
}

// authStart begins a sign-in: the client names the account by email and
// secret-key ID.
func (s *Service) authStart(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email      string `json:"email"`
		SkFormat   string `json:"skFormat"`
		Skid       string `json:"skid"`
		DeviceUUID string `json:"deviceUuid"`
	}
	if !readJSON(r, &req) {
		errorAnswer(w, http.StatusBadRequest, "bad request")
		return
	}
	s.mu.Lock()
	var cred *credential
	for _, c := range s.creds {
		if c.email == req.Email && !c.revoked {
			cred = c
		}
	}
	s.mu.Unlock()
	if cred == nil {
		errorAnswer(w, http.StatusNotFound, "account not found")
		return
	}
	srp, err := newSRPServer(cred.srpX)
	if err != nil {
		errorAnswer(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.mu.Lock()
	if s.deviation.LegacyK {
		// k = SHA256(N ‖ g), g unpadded: not what the SDK computes.
		k := new(big.Int).SetBytes(sha(srpN.Bytes(), srpG.Bytes()))
		v := new(big.Int).Exp(srpG, cred.srpX, srpN)
		srp.B = new(big.Int).Mod(new(big.Int).Add(new(big.Int).Mul(k, v), new(big.Int).Exp(srpG, srp.b, srpN)), srpN)
	}
	sess := &session{id: newSessionID(), cred: cred, srp: srp, skid: req.Skid}
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	writeJSON(w, map[string]any{
		"status":           "ok",
		"sessionID":        sess.id,
		"accountKeyFormat": "A3",
		"accountKeyUuid":   req.Skid,
		"userAuth": map[string]any{
			"method": "SRPg-4096", "alg": "PBES2g-HS256", "iterations": 650000, "salt": b64.EncodeToString(s.acct.salt),
		},
	})
}

func (s *Service) sessionOf(r *http.Request) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[r.Header.Get("X-AgileBits-Session-Id")]
}

// authExchange is SRP's exchange of public values.
func (s *Service) authExchange(w http.ResponseWriter, r *http.Request) {
	sess := s.sessionOf(r)
	var req struct {
		UserA string `json:"userA"`
	}
	if sess == nil || !readJSON(r, &req) {
		errorAnswer(w, http.StatusUnauthorized, "you are not authenticated")
		return
	}
	A, ok := new(big.Int).SetString(req.UserA, 16)
	if !ok || sess.srp.setA(A) != nil {
		errorAnswer(w, http.StatusBadRequest, "bad request")
		return
	}
	// A test may ask for a server secret whose exchange has a rare
	// property (proofs with a leading zero byte, a short B): it draws
	// again until it does.
	for i := 0; s.pick != nil && i < 20000; i++ {
		m1 := sess.srp.clientProof(srpIdentity(sess.skid, sess.cred.email), s.acct.salt)
		if s.pick(sess.srp.B, m1, sess.srp.serverProof(m1)) {
			break
		}
		srp, err := newSRPServer(sess.cred.srpX)
		if err != nil || srp.setA(A) != nil {
			errorAnswer(w, http.StatusInternalServerError, "srp")
			return
		}
		sess.srp = srp
	}
	writeJSON(w, map[string]string{"userB": evenHex(sess.srp.B)})
}

// confirmKey checks the client's proof of the session key and answers the
// server's.
func (s *Service) confirmKey(w http.ResponseWriter, r *http.Request) {
	sess := s.sessionOf(r)
	var req struct {
		ClientVerifyHash string `json:"clientVerifyHash"`
	}
	if sess == nil || sess.srp.K == nil || !readJSON(r, &req) {
		errorAnswer(w, http.StatusUnauthorized, "you are not authenticated")
		return
	}
	// Both proofs travel as unpadded base64url of the whole 32-byte hash,
	// leading zero bytes included, and the server's proof hashes the
	// client's as sent (a server that drops leading zeros fails one
	// sign-in in about 128 with "Server hash was invalid").
	m1, err := b64.DecodeString(req.ClientVerifyHash)
	if err != nil {
		errorAnswer(w, http.StatusBadRequest, "bad request")
		return
	}
	if !hmac.Equal(m1, sess.srp.clientProof(srpIdentity(sess.skid, sess.cred.email), s.acct.salt)) {
		errorAnswer(w, http.StatusUnauthorized, "failed to authenticate")
		return
	}
	s.mu.Lock()
	sess.ok = true
	s.mu.Unlock()
	proof := sess.srp.serverProof(m1)
	writeJSON(w, map[string]string{"serverVerifyHash": b64.EncodeToString(proof)})
}

// sessionHandler answers one request of a signed-in session: body is the
// decrypted request body (nil when there was none); the returned value is
// sent encrypted, unless raw is set.
type sessionHandler func(sess *session, r *http.Request, body []byte) (answer any, raw []byte, status int)

// withSession checks the session, decrypts the request and encrypts the
// answer.
func (s *Service) withSession(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.sessionOf(r)
		if sess == nil || !sess.ok {
			errorAnswer(w, http.StatusUnauthorized, "you are not authenticated")
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			return
		}
		var body []byte
		if len(bytes.TrimSpace(b)) > 0 {
			if r.Header.Get("Content-Type") == "application/octet-stream" {
				body = b
			} else {
				var env envelope
				if json.Unmarshal(b, &env) != nil {
					errorAnswer(w, http.StatusBadRequest, "bad request: not an envelope")
					return
				}
				if body, err = openGCM(sess.srp.K, env); err != nil {
					errorAnswer(w, http.StatusBadRequest, "bad request: "+err.Error())
					return
				}
			}
		}
		ans, raw, status := h(sess, r, body)
		if status >= 400 {
			errorAnswer(w, status, http.StatusText(status))
			return
		}
		if raw != nil {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(raw)
			return
		}
		env, err := sealGCM(sess.srp.K, sess.id, mustJSON(ans))
		if err != nil {
			errorAnswer(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, env)
	}
}

// CoreClient is what SDK v0.4.1's core says it is when it completes a
// sign-in.
const CoreClient = "1Password SDK/0040102"

func (s *Service) authComplete(sess *session, _ *http.Request, body []byte) (any, []byte, int) {
	var req struct {
		Client string `json:"client"`
	}
	json.Unmarshal(body, &req)
	s.mu.Lock()
	s.clients = append(s.clients, req.Client)
	sess.cred.signIns++
	s.mu.Unlock()
	return map[string]any{"userUuid": s.acct.userUUID}, nil, 0
}

// keysets answers the account's one keyset: its symmetric key under the MUK,
// its RSA private key under the symmetric key.
func (s *Service) keysets(*session, *http.Request, []byte) (any, []byte, int) {
	a := &s.acct
	_, symJ := symFromBytes(a.symKey, a.keysetID)
	encSym, err := sealGCM(a.muk, "mp", mustJSON(symJ))
	if err != nil {
		return nil, nil, http.StatusInternalServerError
	}
	pub, priv := rsaJWKs(a.rsaKey, a.keysetID)
	encPri, err := sealGCM(a.symKey, a.keysetID, mustJSON(priv))
	if err != nil {
		return nil, nil, http.StatusInternalServerError
	}
	return map[string]any{
		"version": 1,
		"keysets": []any{map[string]any{
			"uuid": a.keysetID, "encryptedBy": "mp", "sn": 1,
			"encSymKey": encSym, "encPriKey": encPri, "pubKey": pub,
		}},
	}, nil, 0
}

// Clients returns what each completed sign-in said the client was.
func (s *Service) Clients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.clients...)
}

func symFromBytes(k []byte, kid string) ([]byte, symJWK) {
	return k, symJWK{Alg: "A256GCM", Ext: true, K: b64.EncodeToString(k), KeyOps: []string{"decrypt", "encrypt"}, Kty: "oct", Kid: kid}
}
