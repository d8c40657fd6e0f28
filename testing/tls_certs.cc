#include "testing/tls_certs.h"

#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace picos::testing {
namespace {

struct Pair {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~Pair() {
    EVP_PKEY_free(key);
    X509_free(cert);
  }
};

EVP_PKEY* NewKey() {
  EC_KEY* ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  if (ec == nullptr || EC_KEY_generate_key(ec) != 1) return nullptr;
  EVP_PKEY* key = EVP_PKEY_new();
  EVP_PKEY_assign_EC_KEY(key, ec);
  return key;
}

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate for `cn` with `key`, signed by `issuer` (itself if null).
bool Make(Pair* p, const char* cn, const Pair* issuer, bool ca, const char* san, long serial) {
  p->key = NewKey();
  p->cert = X509_new();
  if (p->key == nullptr || p->cert == nullptr) return false;
  X509_set_version(p->cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(p->cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(p->cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(p->cert), 7 * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(p->cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* issuer_cert = issuer ? issuer->cert : p->cert;
  EVP_PKEY* issuer_key = issuer ? issuer->key : p->key;
  X509_set_issuer_name(p->cert, X509_get_subject_name(issuer_cert));
  X509_set_pubkey(p->cert, p->key);
  if (ca) {
    if (!AddExt(p->cert, issuer_cert, NID_basic_constraints, "critical,CA:TRUE")) return false;
    if (!AddExt(p->cert, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign")) return false;
  } else {
    if (!AddExt(p->cert, issuer_cert, NID_basic_constraints, "critical,CA:FALSE")) return false;
    if (san && !AddExt(p->cert, issuer_cert, NID_subject_alt_name, san)) return false;
  }
  return X509_sign(p->cert, issuer_key, EVP_sha256()) != 0;
}

bool WriteCert(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = PEM_write_X509(f, cert) == 1;
  return std::fclose(f) == 0 && ok;
}

bool WriteKey(const std::string& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir) {
  Pair ca, server, client, other;
  if (!Make(&ca, "picos test CA", nullptr, true, nullptr, 1) ||
      !Make(&server, "localhost", &ca, false, "DNS:localhost,IP:127.0.0.1,IP:::1", 2) ||
      !Make(&client, "picos test client", &ca, false, "DNS:client.picos.test", 3) ||
      !Make(&other, "unrelated CA", nullptr, true, nullptr, 4)) {
    return absl::InternalError("could not make test certificates");
  }
  TestPki pki{absl::StrCat(dir, "/ca.pem"),          absl::StrCat(dir, "/server.pem"),
              absl::StrCat(dir, "/server.key"),      absl::StrCat(dir, "/client.pem"),
              absl::StrCat(dir, "/client.key"),      absl::StrCat(dir, "/other-ca.pem")};
  if (!WriteCert(pki.ca_cert, ca.cert) || !WriteCert(pki.server_cert, server.cert) ||
      !WriteKey(pki.server_key, server.key) || !WriteCert(pki.client_cert, client.cert) ||
      !WriteKey(pki.client_key, client.key) || !WriteCert(pki.other_ca_cert, other.cert)) {
    return absl::InternalError(absl::StrCat("could not write test certificates to ", dir));
  }
  return pki;
}

}  // namespace picos::testing
