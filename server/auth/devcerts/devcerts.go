// Package devcerts writes throwaway TLS material for trying Tollgate's secure mode locally and for
// tests: a CA, a server certificate for localhost, one client certificate per role, a bearer token and
// a callers file that configures them. Nothing it writes is for production.
package devcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/server/auth"
)

// Clients are the client certificates Write issues, by certificate name and role.
var Clients = []struct{ Name, Role string }{
	{"orchestrator", auth.RoleDecide},
	{"auditor", auth.RoleAudit},
	{"admin", auth.RoleAdmin},
	{"agent_alloc", auth.RoleAgentPrefix + "agent_alloc"},
}

// TokenCaller is the caller the written bearer token authenticates as; it holds the decide role.
const TokenCaller = "token-client"

// Write writes into dir: ca.crt/.key, server.crt/.key (localhost, 127.0.0.1, ::1), <client>.crt/.key for
// each of Clients (CN <name>, URI SAN ClientID(name)), token (a random bearer token) and callers.json
// configuring all of them, each certificate by its typed URI name.
func Write(dir string, validFor time.Duration) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	notAfter := time.Now().Add(validFor)
	caKey, caCert, err := issue(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Tollgate dev CA (not for production)"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		NotAfter:              notAfter,
	})
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	if err := writePair(dir, "ca", caKey, caCert); err != nil {
		return err
	}
	serverKey, serverCert, err := issue(caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		NotAfter:    notAfter,
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := writePair(dir, "server", serverKey, serverCert); err != nil {
		return err
	}
	cfg := auth.Config{}
	for _, c := range Clients {
		id := ClientID(c.Name)
		if err := issueClient(dir, c.Name, caKey, caCert, &x509.Certificate{Subject: pkix.Name{CommonName: c.Name}, URIs: []*url.URL{id}}); err != nil {
			return err
		}
		cfg.Callers = append(cfg.Callers, auth.CallerConfig{Name: c.Name, CertNames: []string{auth.CertURI + id.String()}, Roles: []string{c.Role}})
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tokenText := hex.EncodeToString(token)
	cfg.Callers = append(cfg.Callers, auth.CallerConfig{Name: TokenCaller, TokenSHA256: []string{auth.HashToken(tokenText)}, Roles: []string{auth.RoleDecide}})
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tokenText+"\n"), 0o600); err != nil {
		return err
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "callers.json"), append(data, '\n'), 0o600)
}

// ClientID is the URI subject alternative name Write gives the client certificate of name, and by which
// callers.json names it: spiffe://tollgate.test/<name>.
func ClientID(name string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: "tollgate.test", Path: "/" + name}
}

// IssueClient writes <name>.crt/.key into dir: a client certificate signed by the CA Write wrote there,
// with tmpl's subject and subject alternative names (tests use it for certificates no caller has, or
// with a chosen CN and SANs). It sets validity, key usage and serial itself.
func IssueClient(dir, name string, tmpl *x509.Certificate) error {
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	return issueClient(dir, name, caKey, caCert, tmpl)
}

func issueClient(dir, name string, caKey *ecdsa.PrivateKey, caCert, tmpl *x509.Certificate) error {
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.NotAfter = caCert.NotAfter
	key, cert, err := issue(caKey, caCert, tmpl)
	if err != nil {
		return fmt.Errorf("client %s: %w", name, err)
	}
	return writePair(dir, name, key, cert)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("CA in %s is not PEM", dir)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("CA key in %s is not ECDSA", dir)
	}
	return cert, key, nil
}

// issue creates a key and a certificate from tmpl, signed by parent (self-signed when parent is nil).
func issue(parentKey *ecdsa.PrivateKey, parent, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parentKey, parent
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func writePair(dir, name string, key *ecdsa.PrivateKey, cert *x509.Certificate) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("%s key: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return err
	}
	return nil
}
