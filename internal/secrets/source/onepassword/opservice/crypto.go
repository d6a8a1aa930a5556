package opservice

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// b64 is the encoding of every binary value in the protocol: base64url
// without padding.
var b64 = base64.RawURLEncoding

// srpN is the 4096-bit group of RFC 5054 (the same prime as RFC 3526's group
// 16); the generator is 5.
var srpN, _ = new(big.Int).SetString("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D788719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA993B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF", 16)

var srpG = big.NewInt(5)

const srpPad = 512 // bytes of the 4096-bit group

func pad(x *big.Int) []byte {
	b := x.Bytes()
	if len(b) >= srpPad {
		return b
	}
	out := make([]byte, srpPad)
	copy(out[srpPad-len(b):], b)
	return out
}

func sha(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// srpServer is the server's half of one SRP-6a exchange (plain RFC 5054 k
// and u).
type srpServer struct {
	v, b, B *big.Int
	A       *big.Int
	K       []byte // session key, once A is known
}

func newSRPServer(x *big.Int) (*srpServer, error) {
	v := new(big.Int).Exp(srpG, x, srpN)
	b, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 256))
	if err != nil {
		return nil, err
	}
	k := new(big.Int).SetBytes(sha(srpN.Bytes(), pad(srpG)))
	B := new(big.Int).Mul(k, v)
	B.Add(B, new(big.Int).Exp(srpG, b, srpN))
	B.Mod(B, srpN)
	return &srpServer{v: v, b: b, B: B}, nil
}

// setA takes the client's public value and derives the session key.
func (s *srpServer) setA(A *big.Int) error {
	if new(big.Int).Mod(A, srpN).Sign() == 0 {
		return errors.New("the client's public value A is zero modulo N")
	}
	s.A = A
	u := new(big.Int).SetBytes(sha(pad(A), pad(s.B)))
	S := new(big.Int).Exp(s.v, u, srpN)
	S.Mul(S, A)
	S.Exp(S, s.b, srpN)
	s.K = sha([]byte(S.Text(16)))
	return nil
}

// clientProof is the M1 the client must send: SHA256((H(N) xor H(g)) ‖ H(I)
// ‖ salt ‖ A ‖ B ‖ K).
func (s *srpServer) clientProof(identity string, salt []byte) []byte {
	hn, hg := sha(srpN.Bytes()), sha(srpG.Bytes())
	x := make([]byte, len(hn))
	for i := range hn {
		x[i] = hn[i] ^ hg[i]
	}
	return sha(x, sha([]byte(identity)), salt, s.A.Bytes(), s.B.Bytes(), s.K)
}

// serverProof is SHA256(A ‖ M1 ‖ K).
func (s *srpServer) serverProof(m1 []byte) []byte {
	return sha(s.A.Bytes(), m1, s.K)
}

// srpIdentity is I: base64url(SHA256(SHA256(accountKeyUuid) ‖ SHA256(email))).
func srpIdentity(skid, email string) string {
	return b64.EncodeToString(sha(sha([]byte(skid)), sha([]byte(email))))
}

// evenHex is x in lower-case hex with an even number of digits.
func evenHex(x *big.Int) string {
	s := x.Text(16)
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// envelope is the B5 encrypted-message object used for session traffic and
// for every encrypted key and record.
type envelope struct {
	Kid  string `json:"kid"`
	Enc  string `json:"enc"`
	Cty  string `json:"cty"`
	IV   string `json:"iv,omitempty"`
	Data string `json:"data"`
}

func sealGCM(key []byte, kid string, plain []byte) (envelope, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return envelope{}, err
	}
	iv := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(iv); err != nil {
		return envelope{}, err
	}
	return envelope{Kid: kid, Enc: "A256GCM", Cty: "b5+jwk+json", IV: b64.EncodeToString(iv), Data: b64.EncodeToString(gcm.Seal(nil, iv, plain, nil))}, nil
}

func openGCM(key []byte, e envelope) ([]byte, error) {
	if e.Enc != "A256GCM" {
		return nil, fmt.Errorf("envelope encrypted with %q, want A256GCM", e.Enc)
	}
	iv, err := b64.DecodeString(e.IV)
	if err != nil {
		return nil, fmt.Errorf("envelope iv: %w", err)
	}
	data, err := b64.DecodeString(e.Data)
	if err != nil {
		return nil, fmt.Errorf("envelope data: %w", err)
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(iv) != gcm.NonceSize() {
		return nil, fmt.Errorf("envelope iv is %d bytes", len(iv))
	}
	return gcm.Open(nil, iv, data, nil)
}

// fileCipher encrypts a file's content as the SDK expects: AES-256-GCM under
// the file's own key and nonce, no additional data, tag appended.
func fileCipher(key, nonce, plain []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return gcm.Seal(nil, nonce, plain, nil), nil
}

// symJWK is an A256GCM key as the core reads it.
type symJWK struct {
	Alg    string   `json:"alg"`
	Ext    bool     `json:"ext"`
	K      string   `json:"k"`
	KeyOps []string `json:"key_ops"`
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
}

func newSymKey(kid string) ([]byte, symJWK) {
	k := randomBytes(32)
	return k, symJWK{Alg: "A256GCM", Ext: true, K: b64.EncodeToString(k), KeyOps: []string{"decrypt", "encrypt"}, Kty: "oct", Kid: kid}
}

// rsaJWK is an RSA-OAEP-256 key, public or private.
type rsaJWK struct {
	Alg    string   `json:"alg"`
	Ext    bool     `json:"ext"`
	KeyOps []string `json:"key_ops"`
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	D      string   `json:"d,omitempty"`
	P      string   `json:"p,omitempty"`
	Q      string   `json:"q,omitempty"`
	DP     string   `json:"dp,omitempty"`
	DQ     string   `json:"dq,omitempty"`
	QI     string   `json:"qi,omitempty"`
}

func rsaJWKs(k *rsa.PrivateKey, kid string) (pub, priv rsaJWK) {
	enc := func(x *big.Int) string { return b64.EncodeToString(x.Bytes()) }
	pub = rsaJWK{Alg: "RSA-OAEP-256", Ext: true, KeyOps: []string{"encrypt"}, Kty: "RSA", Kid: kid,
		N: enc(k.N), E: enc(big.NewInt(int64(k.E)))}
	priv = pub
	priv.KeyOps = []string{"decrypt"}
	priv.D, priv.P, priv.Q = enc(k.D), enc(k.Primes[0]), enc(k.Primes[1])
	priv.DP, priv.DQ, priv.QI = enc(k.Precomputed.Dp), enc(k.Precomputed.Dq), enc(k.Precomputed.Qinv)
	return pub, priv
}

func sealRSA(pub *rsa.PublicKey, kid string, plain []byte) (envelope, error) {
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, plain, nil)
	if err != nil {
		return envelope{}, err
	}
	return envelope{Kid: kid, Enc: "RSA-OAEP-256", Cty: "b5+jwk+json", Data: b64.EncodeToString(ct)}, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// newID is a 26-character ID of [a-z0-9], the only form the core accepts.
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var out [26]byte
	for i, b := range randomBytes(26) {
		out[i] = alphabet[int(b)%len(alphabet)]
	}
	return string(out[:])
}

// newSessionID is base32 of 16 random bytes, unpadded: 26 characters whose
// last is one of AEIMQUY4, as the core expects.
func newSessionID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := randomBytes(16)
	n := new(big.Int).SetBytes(b)
	n.Lsh(n, 2) // 128 bits padded to 130 = 26 × 5
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[new(big.Int).And(n, big.NewInt(31)).Int64()]
		n.Rsh(n, 5)
	}
	return string(out[:])
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// newGCM is AES-256-GCM under key, the one cipher of the protocol: session
// envelopes, item records and files all use it.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
