// The benchmark baseline: a token endpoint written the way Tiledesk's custom-authentication tutorial prescribes
// (Express + jsonwebtoken), doing the same work as tiledesk-auth's POST /tokens: check the API key, read the JSON
// body, mint the same claims (HS256, 1 h, random jti), answer the same JSON. Not a product: `cargo xtask bench`
// starts it with PORT, TILEDESK_PROJECT_ID, TILEDESK_SECRET and TILEDESK_API_KEY set.
"use strict";
const crypto = require("crypto");
const express = require("express");
const jwt = require("jsonwebtoken");

const { PORT, TILEDESK_PROJECT_ID: projectId, TILEDESK_SECRET: secret, TILEDESK_API_KEY: apiKey } = process.env;
if (!PORT || !projectId || !secret || !apiKey) {
  console.error("set PORT, TILEDESK_PROJECT_ID, TILEDESK_SECRET and TILEDESK_API_KEY");
  process.exit(2);
}

// As the tutorial has it, the secret is a string. jsonwebtoken 9 then tries to read it as a PEM private key (OpenSSL's
// decoders) before falling back to an HMAC key, on every sign() (about 420 us here). BASELINE_KEY_OBJECT=1 passes a
// KeyObject made once instead (about 9 us): the tuned baseline `cargo xtask bench` also reports.
const key = process.env.BASELINE_KEY_OBJECT === "1" ? crypto.createSecretKey(Buffer.from(secret)) : secret;

const app = express();
app.use(express.json({ limit: "16kb" }));

app.post("/tokens", (req, res) => {
  if (req.get("authorization") !== `Bearer ${apiKey}`) {
    return res.status(401).json({ error: "invalid_api_key" });
  }
  const { user_id: userId, firstname, lastname, email, attributes } = req.body || {};
  if (typeof userId !== "string" || userId === "") {
    return res.status(400).json({ error: "missing_field" });
  }
  const iat = Math.floor(Date.now() / 1000);
  const payload = {
    _id: `${projectId}_${userId}`,
    sub: "userexternal",
    aud: `https://tiledesk.com/projects/${projectId}`,
    iat,
    exp: iat + 3600,
    firstname,
    lastname,
    email,
    attributes,
    jti: crypto.randomBytes(16).toString("hex"),
  };
  const token = jwt.sign(payload, key, { algorithm: "HS256" });
  res.set("Cache-Control", "no-store").json({
    token: `JWT ${token}`,
    expires_at: payload.exp,
    user: { id: userId, email, firstname, lastname },
  });
});

app.listen(Number(PORT), "127.0.0.1", () => {
  console.log(`baseline listening on http://127.0.0.1:${PORT}`);
});
