"""The SigV4 verifier of the test S3 (test/support/s3.py) against AWS's published examples: if it
computes AWS's signatures, a request it accepts is one S3 would accept."""
import hashlib
import time
import unittest

import s3

# AWS's documentation examples (S3 API reference, "Authenticating Requests: Using the
# Authorization Header"), with the documentation's example credentials.
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_HOST = "examplebucket.s3.amazonaws.com"
DOC_DATE = "20130524T000000Z"


class PublishedVectorsTest(unittest.TestCase):
    def sign(self, method, path, query, headers, payload, secret=DOC_SECRET, date=DOC_DATE,
             region="us-east-1", service="s3"):
        signed = sorted(k.lower() for k, _ in headers)
        creq = s3.canonical_request(method, path, query, headers, signed, payload)
        return s3.signature(secret, date, region, service, creq)

    def test_get_object(self):
        h = [("Host", DOC_HOST), ("Range", "bytes=0-9"),
             ("x-amz-content-sha256", s3.EMPTY_SHA256), ("x-amz-date", DOC_DATE)]
        self.assertEqual(self.sign("GET", "/test.txt", "", h, s3.EMPTY_SHA256),
                         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")

    def test_put_object(self):
        body = b"Welcome to Amazon S3."
        payload = hashlib.sha256(body).hexdigest()
        self.assertEqual(payload,
                         "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        h = [("Host", DOC_HOST), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
             ("x-amz-date", DOC_DATE), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
             ("x-amz-content-sha256", payload)]
        self.assertEqual(self.sign("PUT", "/test%24file.text", "", h, payload),
                         "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")

    def test_get_bucket_lifecycle(self):
        h = [("Host", DOC_HOST), ("x-amz-content-sha256", s3.EMPTY_SHA256),
             ("x-amz-date", DOC_DATE)]
        self.assertEqual(self.sign("GET", "/", "lifecycle", h, s3.EMPTY_SHA256),
                         "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")

    def test_list_objects_query_sorted(self):
        h = [("Host", DOC_HOST), ("x-amz-content-sha256", s3.EMPTY_SHA256),
             ("x-amz-date", DOC_DATE)]
        self.assertEqual(self.sign("GET", "/", "prefix=J&max-keys=2", h, s3.EMPTY_SHA256),
                         "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")

    def test_sigv4_suite_get_vanilla(self):
        # aws-sig-v4-test-suite "get-vanilla" (service "service", its own example secret).
        h = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]
        self.assertEqual(
            self.sign("GET", "/", "", h, s3.EMPTY_SHA256,
                      secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date="20150830T123600Z",
                      service="service"),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


class VerifyTest(unittest.TestCase):
    """verify() accepts exactly what is signed right, with the right key and token."""

    def request(self, secret="SECRET", token="TOKEN", tamper=None):
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = [("Host", "127.0.0.1:9000"), ("x-amz-date", amz_date),
                   ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                   ("x-amz-acl", "bucket-owner-full-control"), ("x-amz-security-token", token)]
        signed = sorted(k.lower() for k, _ in headers)
        creq = s3.canonical_request("PUT", "/b/k", "", headers, signed, "UNSIGNED-PAYLOAD")
        sig = s3.signature(secret, amz_date, "us-east-1", "s3", creq)
        auth = ("AWS4-HMAC-SHA256 Credential=AKID/%s/us-east-1/s3/aws4_request, "
                "SignedHeaders=%s, Signature=%s" % (amz_date[:8], ";".join(signed), sig))
        headers.append(("Authorization", auth))
        if tamper:
            headers = tamper(headers)
        return s3.verify("PUT", "/b/k", headers, b"body", {"AKID": ("SECRET", "TOKEN")})

    def test_good(self):
        err, _ = self.request()
        self.assertIsNone(err)

    def test_bad_secret(self):
        self.assertEqual(self.request(secret="WRONG")[0], "SignatureDoesNotMatch")

    def test_bad_token(self):
        self.assertEqual(self.request(token="OTHER")[0], "InvalidToken")

    def test_changed_header(self):
        def tamper(h):
            return [(k, "public-read" if k == "x-amz-acl" else v) for k, v in h]
        self.assertEqual(self.request(tamper=tamper)[0], "SignatureDoesNotMatch")

    def test_unsigned_amz_header(self):
        def tamper(h):
            return h + [("x-amz-storage-class", "GLACIER")]
        self.assertEqual(self.request(tamper=tamper)[0], "AccessDenied")


if __name__ == "__main__":
    unittest.main()
