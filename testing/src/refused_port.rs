//! A loopback port where connections are refused until a test decides otherwise.
//!
//! Binding a listener to port 0, reading its address and dropping it leaves a port that any
//! other test running at the same time may be given next, and then connections to it reach
//! that test's server instead of being refused. A socket that is bound but not listening keeps
//! the port to itself while the kernel refuses every connection to it.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// A loopback port held by this test, refusing connections until [`RefusedPort::listen`].
pub struct RefusedPort {
    socket: TcpSocket,
    addr: SocketAddr,
}

impl RefusedPort {
    /// Holds a fresh loopback port without listening on it.
    pub fn new() -> Self {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind("127.0.0.1:0".parse().expect("a loopback address"))
            .expect("bind a loopback port");
        let addr = socket.local_addr().expect("the bound address");
        Self { socket, addr }
    }

    /// The held address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening on the held port: connections from now on are accepted.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(1024).expect("listen on the held port")
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_port_refuses_connections_and_is_given_to_nobody_else_until_it_listens() {
        let port = RefusedPort::new();
        let addr = port.addr();
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        // Another server asking for that port (as one given it by the kernel would) fails.
        assert!(TcpListener::bind(addr).await.is_err());

        let listener = port.listen();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        client.unwrap();
        accepted.unwrap();
    }
}
