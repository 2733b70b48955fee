//! `cargo xtask image`: a container image built from scratch, pulling nothing: the static (musl) release binary with
//! the browser module inside, the CA certificates, a non-root user, `HEALTHCHECK` on `/healthz` (through the binary's
//! own `health` command: the image has no shell and no curl). Built with buildah (a Debian package) into
//! `target/dist/tiledesk-auth-image.tar` (docker-archive: `podman load` or `docker load`), then run once to check
//! `/readyz`: in podman when this machine can run containers; otherwise the image's own binary, taken out of the
//! image, is run and checked, and the command says why the container could not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::dist::{MODULE_DIR_VAR, dist_dir, module_dir};
use super::{apt_install, pkg, setup_build};
use crate::process::{cargo, command_output, random_hex, root, run, step};

const TARGET: &str = "x86_64-unknown-linux-musl";
/// The user the service runs as in the image.
const UID: u32 = 65532;
/// buildah and podman keep their images here, in the plain `vfs` driver (no overlay module needed).
const STORAGE: &[&str] = &["--storage-driver", "vfs"];

pub(crate) fn image() -> anyhow::Result<()> {
    setup_build()?;
    apt_install(&[
        ("buildah", "buildah"),
        ("podman", "podman"),
        ("musl-gcc", "musl-tools"),
    ])?;
    run(Command::new("rustup").args(["target", "add", TARGET]))?;
    pkg()?;
    step("building the static (musl) release service with the browser module inside (several minutes)");
    run(cargo()
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--package",
            "tiledesk-auth-server",
            "--bin",
            "tiledesk-auth",
        ])
        .env(MODULE_DIR_VAR, module_dir())
        .env("CC_x86_64_unknown_linux_musl", "musl-gcc"))?;
    let binary = root().join(format!("target/{TARGET}/release/tiledesk-auth"));
    let linked = command_output("file", &[binary.to_str().unwrap_or_default()]).unwrap_or_default();
    if !linked.contains("statically linked") && !linked.contains("static-pie") {
        bail!("{} is not static: {linked}", binary.display());
    }

    step("assembling the image from scratch with buildah");
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("localhost/tiledesk-auth:{version}");
    let container = buildah(&["from", "scratch"])?;
    let work = tempfile_dir()?;
    std::fs::write(
        work.join("passwd"),
        format!("root:x:0:0:root:/:/sbin/nologin\ntiledesk-auth:x:{UID}:{UID}::/data:/sbin/nologin\n"),
    )?;
    std::fs::write(work.join("group"), format!("root:x:0:\ntiledesk-auth:x:{UID}:\n"))?;
    std::fs::create_dir_all(work.join("data"))?;
    let copy = |from: &Path, to: &str| -> anyhow::Result<()> {
        buildah(&["copy", &container, from.to_str().unwrap_or_default(), to]).map(drop)
    };
    copy(&binary, "/tiledesk-auth")?;
    copy(
        Path::new("/etc/ssl/certs/ca-certificates.crt"),
        "/etc/ssl/certs/ca-certificates.crt",
    )?;
    copy(&work.join("passwd"), "/etc/passwd")?;
    copy(&work.join("group"), "/etc/group")?;
    buildah(&[
        "copy",
        "--chown",
        &format!("{UID}:{UID}"),
        &container,
        work.join("data").to_str().unwrap_or_default(),
        "/data",
    ])?;
    buildah(&[
        "config",
        "--user",
        &format!("{UID}:{UID}"),
        "--workingdir",
        "/data",
        "--entrypoint",
        r#"["/tiledesk-auth"]"#,
        "--cmd",
        "serve",
        "--env",
        "TILEDESK_AUTH_LISTEN=0.0.0.0:3000",
        "--env",
        "TILEDESK_AUTH_DATABASE=sqlite:///data/tiledesk-auth.db",
        "--env",
        "TILEDESK_AUTH_LOG_FORMAT=json",
        "--env",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "--port",
        "3000",
        "--volume",
        "/data",
        "--healthcheck",
        "CMD /tiledesk-auth health",
        "--healthcheck-interval",
        "30s",
        "--healthcheck-timeout",
        "6s",
        "--label",
        &format!("org.opencontainers.image.version={version}"),
        "--label",
        "org.opencontainers.image.title=tiledesk-auth",
        &container,
    ])?;
    buildah(&["commit", "--format", "docker", "--rm", &container, &name])?;
    let archive = dist_dir().join("tiledesk-auth-image.tar");
    std::fs::create_dir_all(dist_dir())?;
    let _ = std::fs::remove_file(&archive);
    run(Command::new("podman")
        .args(STORAGE)
        .args(["save", "--quiet", "--format", "docker-archive", "-o"])
        .arg(&archive)
        .arg(&name))?;
    println!("image {name}, saved to {}", archive.display());

    step("running the image once and asking /readyz");
    check_image(&name)
}

/// Runs the image with a throwaway project and asks `/readyz`; where podman cannot run containers, runs the image's own
/// binary, copied out of it, instead, and says why.
fn check_image(name: &str) -> anyhow::Result<()> {
    let project = "64f0c0ffee0123456789abcd";
    let secret = random_hex(24)?;
    let port = free_port()?;
    let started = Command::new("podman")
        .args(STORAGE)
        .args(["run", "--rm", "--detach", "--network", "host"])
        .args(["--env", &format!("TILEDESK_AUTH_LISTEN=127.0.0.1:{port}")])
        .args(["--env", &format!("TILEDESK_PROJECT_ID={project}")])
        .args(["--env", &format!("TILEDESK_SECRET={secret}")])
        .arg(name)
        .output()?;
    if started.status.success() {
        let id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
        let ready = wait_ready(port);
        let _ = Command::new("podman")
            .args(STORAGE)
            .args(["rm", "--force", &id])
            .output();
        ready?;
        println!("the container answered /readyz 200 on 127.0.0.1:{port}");
        return Ok(());
    }
    // Its last line is the reason; the ones before are podman's noise about timers it could not set.
    let stderr = String::from_utf8_lossy(&started.stderr);
    let why = stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no reason given")
        .trim()
        .to_owned();
    println!(
        "podman cannot run containers on this machine ({why}); running the image's own binary instead, copied out of it"
    );
    let copied = buildah(&["from", name])?;
    let mount = buildah(&["mount", &copied])?;
    let inside = PathBuf::from(mount.trim()).join("tiledesk-auth");
    let data = tempfile_dir()?;
    let mut service = Command::new(&inside)
        .arg("serve")
        .current_dir(&data)
        .env("TILEDESK_AUTH_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TILEDESK_AUTH_DATABASE",
            format!("sqlite://{}", data.join("users.db").display()),
        )
        .env("TILEDESK_PROJECT_ID", project)
        .env("TILEDESK_SECRET", &secret)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| inside.display().to_string())?;
    let ready = wait_ready(port);
    let healthy = Command::new(&inside)
        .args(["health", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .status()?;
    let _ = service.kill();
    let _ = service.wait();
    buildah(&["umount", &copied])?;
    buildah(&["rm", &copied])?;
    ready?;
    if !healthy.success() {
        bail!("the image's HEALTHCHECK command said the service is not alive");
    }
    println!("the image's binary answered /readyz 200 and its HEALTHCHECK command said alive");
    Ok(())
}

/// `buildah <args>` (vfs storage), its standard output.
fn buildah(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("buildah").args(STORAGE).args(args).output()?;
    if !output.status.success() {
        bail!(
            "buildah {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Polls `GET /readyz` on 127.0.0.1:`port` until it answers 200, at most 30 s.
fn wait_ready(port: u16) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                stream,
                "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("no 200 from /readyz on 127.0.0.1:{port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(200)); // polling for the service, not a pause
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh directory under `target/image`.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = root().join(format!("target/image/{}", random_hex(6)?));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
