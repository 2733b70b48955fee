// Tiledesk's own verification of a visitor token, as tiledesk-server 2.19.16 does it in
// middleware/passport.js for POST /auth/signinWithCustomToken: passport-jwt 4 with jsonwebtoken 8,
// the token taken from `Authorization: JWT <token>`, the secret chosen by the project id in `aud`,
// `_id` required, `sub: userexternal` handled as an external visitor.
//
// Input (stdin): {"projects": {"<id>": "<secret>"}, "tokens": [{"name": "...", "authorization": "JWT ..."}]}
// Output (stdout): one JSON object per token: {"name", "accepted", "status", "reason", "user"}.
"use strict";

const jwt = require("jsonwebtoken");
const { Strategy: JwtStrategy, ExtractJwt } = require("passport-jwt");

function strategyFor(projects) {
  const opts = {
    jwtFromRequest: ExtractJwt.fromExtractors([
      ExtractJwt.fromAuthHeaderWithScheme("jwt"),
      ExtractJwt.fromUrlQueryParameter("secret_token"),
    ]),
    passReqToCallback: true,
    secretOrKeyProvider(request, rawJwtToken, done) {
      const decoded = jwt.decode(rawJwtToken);
      if (decoded && decoded.aud) {
        const path = new URL(decoded.aud).pathname; // throws on a non-URL aud: a server error in Tiledesk
        const [, audienceType, audienceId] = path.split("/");
        if (audienceType === "projects") {
          if (!audienceId) return done(null, null);
          const secret = projects[audienceId]; // Project.findOne({_id, status: 100}).select('+jwtSecret')
          return done(null, secret === undefined ? null : secret);
        }
        return done(null, null);
      }
      return done(new Error("no aud"), null); // Tiledesk answers 400 without aud
    },
  };
  return new JwtStrategy(opts, (req, payload, done) => {
    if (payload._id === undefined && (payload._doc === undefined || payload._doc._id === undefined)) {
      return done(null, false);
    }
    if (payload.sub === "userexternal") {
      // UserUtil.decorateUser: id and fullName derived from _id, firstname, lastname.
      const user = Object.assign({}, payload, {
        id: payload._id,
        fullName: [payload.firstname, payload.lastname].filter(Boolean).join(" "),
      });
      return done(null, user);
    }
    return done(null, false, { message: "subject " + payload.sub + " is not an external visitor" });
  });
}

function authenticate(strategy, authorization) {
  return new Promise((resolve) => {
    // What passport does: a per-request object with the strategy as prototype and the outcome actions.
    const attempt = Object.create(strategy);
    attempt.success = (user) => resolve({ accepted: true, status: 200, user });
    attempt.fail = (challenge) => {
      const reason = challenge instanceof Error ? challenge.message : challenge && (challenge.message || String(challenge));
      resolve({ accepted: false, status: 401, reason: reason || "unauthorized" });
    };
    attempt.error = (err) => resolve({ accepted: false, status: 400, reason: String(err && err.message) });
    const req = { headers: { authorization }, url: "/auth/signinWithCustomToken", method: "POST" };
    try {
      attempt.authenticate(req, { session: false });
    } catch (err) {
      resolve({ accepted: false, status: 500, reason: String(err && err.message) });
    }
  });
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const strategy = strategyFor(input.projects);
  for (const { name, authorization } of input.tokens) {
    const outcome = await authenticate(strategy, authorization);
    process.stdout.write(JSON.stringify(Object.assign({ name }, outcome)) + "\n");
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + "\n");
  process.exit(2);
});
