package StarlingTest;

# Test helper for the Starling nginx module: starts Debian's nginx with
# the built module on a free loopback port under a temporary prefix, and
# speaks HTTP/1.1 and server-sent events over plain sockets. Core Perl
# modules only.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(json_decode json_encode);

my $json = JSON::PP->new->utf8->canonical->allow_nonref;

sub json_decode { my $t = shift; my $v = eval { $json->decode($t) }; return $v; }
sub json_encode { return $json->encode(shift); }

sub root {
    return abs_path($ENV{ST_ROOT} // '.');
}

# ../shared (synthetic models, references); tests that need it skip
# themselves when it is absent (ST_SHARED overrides)
sub shared_dir {
    return $ENV{ST_SHARED} // root() . '/../shared';
}

# the 72 MB F32 synthetic llama (slow per token), or undef
sub synth_f32 {
    my $f = shared_dir() . '/models/synthetic/synth-llama-F32.gguf';
    return -f $f ? abs_path($f) : undef;
}

sub module_path {
    return $ENV{STARLING_MODULE}
        // root() . '/build/nginx/ngx_http_starling_module.so';
}

sub nginx_bin {
    return $ENV{NGINX_BIN} // '/usr/sbin/nginx';
}

# skip_all unless nginx and the module are there
sub require_nginx {
    plan skip_all => 'nginx binary not found: ' . nginx_bin()
        unless -x nginx_bin();
    plan skip_all => 'module not built (make module): ' . module_path()
        unless -f module_path();
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or die "cannot bind: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# new(http => "...", server => "...", main => "...", workers => N,
#     listen => "reuseport")
# {{MODEL260K}}, {{MODELQ8}}, {{SYNTHF32}}, {{PREFIX}} in the snippets are
# replaced.
sub new {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;

    $self->{prefix} = tempdir('starling-t-XXXXXX', TMPDIR => 1,
                              CLEANUP => !$ENV{ST_KEEP});
    $self->{port} = free_port();
    chmod 0755, $self->{prefix};
    mkdir "$self->{prefix}/logs";
    $self->write_conf;
    return $self;
}

sub expand {
    my ($self, $s) = @_;
    my $root = root();
    $s =~ s/\{\{MODEL260K\}\}/$root\/models\/stories260K.gguf/g;
    $s =~ s/\{\{MODELQ8\}\}/$root\/models\/TinyStories-656K-Q8_0.gguf/g;
    if ($s =~ /\{\{SYNTHF32\}\}/) {
        my $f = synth_f32() // die "no synthetic F32 model in ../shared";
        $s =~ s/\{\{SYNTHF32\}\}/$f/g;
    }
    $s =~ s/\{\{PREFIX\}\}/$self->{prefix}/g;
    $s =~ s/\{\{PORT\}\}/$self->{port}/g;
    return $s;
}

sub conf_text {
    my ($self) = @_;
    my $module = module_path();
    my $workers = $self->{workers} // 1;
    my $listen = $self->{listen} ? " $self->{listen}" : '';
    my $main = $self->expand($self->{main} // '');
    my $http = $self->expand($self->{http} // <<'EOF');
    starling_model tiny path={{MODEL260K}};
    starling_model q8 path={{MODELQ8}};
EOF
    my $server = $self->expand($self->{server} // <<'EOF');
        location /v1/ { starling openai; }
        location / { starling worker; }
EOF

    return <<"EOF";
load_module $module;
worker_processes $workers;
error_log $self->{prefix}/logs/error.log info;
pid $self->{prefix}/nginx.pid;
$main
events { worker_connections 256; }
http {
    access_log $self->{prefix}/logs/access.log;
    client_body_temp_path $self->{prefix}/body;
    proxy_temp_path $self->{prefix}/proxy;
    fastcgi_temp_path $self->{prefix}/fastcgi;
    uwsgi_temp_path $self->{prefix}/uwsgi;
    scgi_temp_path $self->{prefix}/scgi;
$http
    server {
        listen 127.0.0.1:$self->{port}$listen;
$server
    }
}
EOF
}

sub write_conf {
    my ($self) = @_;
    open my $fh, '>', "$self->{prefix}/nginx.conf" or die $!;
    print $fh $self->conf_text;
    close $fh;
}

sub nginx_cmd {
    my ($self, @args) = @_;
    return (nginx_bin(), '-p', "$self->{prefix}/", '-c',
            "$self->{prefix}/nginx.conf", '-e',
            "$self->{prefix}/logs/error.log", @args);
}

# nginx -t: returns (ok, output)
sub test_conf {
    my ($self) = @_;
    my @cmd = $self->nginx_cmd('-t');
    my $out = `@cmd 2>&1`;
    return ($? == 0, $out);
}

sub start {
    my ($self, %o) = @_;
    # free_port() closes its socket before nginx binds the port, so
    # another process (a test running beside this one) can take it in
    # between: then the configuration is written again with a new port
    # (tests read $t->{port} after start)
    for (my $try = 1; ; $try++) {
        my @cmd = $self->nginx_cmd;
        last if system(@cmd) == 0;
        my $log = $self->error_log // '';
        die "nginx failed to start:\n$log"
            unless $try < 5
                   && $log =~ /bind\(\) to 127\.0\.0\.1:\Q$self->{port}\E failed \(98/;
        # the failed bind's [emerg] is not this test's: check_error_log
        # must not see it
        open my $fh, '>', "$self->{prefix}/logs/error.log" or die $!;
        close $fh;
        $self->{port} = free_port();
        $self->write_conf;
    }
    $self->{started} = 1;

    my $deadline = time + 20;
    while (time < $deadline) {
        my $r = $self->request('GET', '/ready');
        return $self if $r && $o{no_wait};
        return $self if $r && $r->{status} == 200;
        sleep 0.05;
    }
    die "nginx did not become ready:\n" . $self->error_log;
}

sub pid {
    my ($self) = @_;
    open my $fh, '<', "$self->{prefix}/nginx.pid" or return;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

sub signal {
    my ($self, $sig) = @_;
    my @cmd = $self->nginx_cmd('-s', $sig);
    system(@cmd) == 0 or diag("nginx -s $sig failed");
}

sub stop {
    my ($self) = @_;
    return unless $self->{started};
    my $pid = $self->pid;
    # a signal to the pid, not "nginx -s quit": that parses nginx.conf,
    # which a test may have left unparseable on purpose
    if ($pid) {
        kill 'QUIT', $pid;
    } else {
        $self->signal('quit');
    }
    my $deadline = time + 15;
    while ($pid && kill(0, $pid) && time < $deadline) {
        sleep 0.05;
    }
    if ($pid && kill(0, $pid)) {
        diag('nginx did not quit in time; terminating');
        kill 'TERM', $pid;
        sleep 0.5;
    }
    $self->{started} = 0;
}

sub DESTROY {
    my ($self) = @_;
    $self->stop if $self->{started};
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{prefix}/logs/error.log" or return '';
    local $/;
    return <$fh>;
}

sub access_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{prefix}/logs/access.log" or return '';
    local $/;
    return <$fh>;
}

# ok() that error.log has no [alert], [emerg] or sanitizer report
sub check_error_log {
    my ($self) = @_;
    my @bad = grep { /\[(alert|emerg|crit)\]|AddressSanitizer|runtime error:/ }
              split /\n/, $self->error_log;
    ok(!@bad, 'no [alert]/[emerg]/[crit]/sanitizer lines in error.log')
        or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
}

sub connect_server {
    my ($self) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $self->{port},
                                 Proto => 'tcp', Timeout => 5);
}

sub build_request {
    my ($self, $method, $path, $body, %h) = @_;
    $body = json_encode($body) if ref $body;
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\n";
    for my $k (sort keys %h) {
        $req .= "$k: $h{$k}\r\n";
    }
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
              . 'Content-Length: ' . length($body) . "\r\n";
    }
    $req .= "\r\n";
    $req .= $body if defined $body;
    return $req;
}

sub parse_head {
    my ($head) = @_;
    my @lines = split /\r\n/, $head;
    my $status_line = shift @lines;
    my ($status) = $status_line =~ m{^HTTP/\d\.\d (\d+)};
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = $v;
    }
    return ($status, \%h);
}

sub dechunk {
    my ($body) = @_;
    my $out = '';
    while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
        my $n = hex $1;
        last if $n == 0;
        $out .= substr($body, 0, $n, '');
        $body =~ s/^\r\n//;
    }
    return $out;
}

# request(METHOD, PATH, BODY(ref|string|undef), headers...) ->
#   { status, headers, body, json }
sub request {
    my ($self, $method, $path, $body, %h) = @_;
    my $s = $self->connect_server or return;
    print $s $self->build_request($method, $path, $body, %h);
    local $/;
    my $resp = <$s>;
    close $s;
    return unless defined $resp && length $resp;
    my ($head, $rest) = split /\r\n\r\n/, $resp, 2;
    my ($status, $hdr) = parse_head($head);
    $rest //= '';
    $rest = dechunk($rest)
        if ($hdr->{'transfer-encoding'} // '') =~ /chunked/i;
    return { status => $status, headers => $hdr, body => $rest,
             json => json_decode($rest) };
}

# One request on an open keep-alive connection (the same worker answers
# every request of a connection): { status, headers, body, json }.
# Bodies must carry Content-Length or be chunked.
sub request_on {
    my ($self, $s, $method, $path, $body, %h) = @_;
    my $req = $self->build_request($method, $path, $body, %h);
    $req =~ s/Connection: close\r\n/Connection: keep-alive\r\n/;
    print $s $req;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + 10;
    my ($head, $status, $hdr);
    while (time < $deadline) {
        if (!defined $head && (my $i = index($buf, "\r\n\r\n")) >= 0) {
            $head = substr($buf, 0, $i + 4, '');
            ($status, $hdr) = parse_head(substr($head, 0, -4));
        }
        if (defined $head) {
            if (defined $hdr->{'content-length'}
                && length($buf) >= $hdr->{'content-length'}) {
                my $b = substr($buf, 0, $hdr->{'content-length'});
                return { status => $status, headers => $hdr, body => $b,
                         json => json_decode($b) };
            }
            if (($hdr->{'transfer-encoding'} // '') =~ /chunked/i
                && $buf =~ /(^|\r\n)0\r\n\r\n\z/) {
                my $b = dechunk($buf);
                return { status => $status, headers => $hdr, body => $b,
                         json => json_decode($b) };
            }
        }
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $chunk, 65536);
        last unless $n;
        $buf .= $chunk;
    }
    return;
}

# Opens a streaming request; returns a stream object.
sub stream_open {
    my ($self, $path, $body, %h) = @_;
    my $s = $self->connect_server or die "connect: $!";
    print $s $self->build_request('POST', $path, $body, %h);
    return StarlingTest::Stream->new($s);
}

# Whole stream: returns (status, headers, [events])
sub stream {
    my ($self, $path, $body, %h) = @_;
    my $st = $self->stream_open($path, $body, %h);
    my @ev;
    while (my $e = $st->next_event(30)) {
        push @ev, $e;
    }
    $st->close;
    return ($st->{status}, $st->{headers}, \@ev, $st);
}

package StarlingTest::Stream;

use Time::HiRes qw(time);
use IO::Select;

sub new {
    my ($class, $sock) = @_;
    return bless { sock => $sock, buf => '', raw => '', head_done => 0,
                   eof => 0, events => [] }, $class;
}

# read more bytes (with timeout); returns 0 on eof/timeout
sub fill {
    my ($self, $timeout) = @_;
    return 0 if $self->{eof};
    my $sel = IO::Select->new($self->{sock});
    return 0 unless $sel->can_read($timeout);
    my $n = sysread($self->{sock}, my $chunk, 65536);
    if (!$n) {
        $self->{eof} = 1;
        return 0;
    }
    $self->{raw} .= $chunk;
    $self->parse;
    return 1;
}

sub parse {
    my ($self) = @_;
    if (!$self->{head_done}) {
        my $i = index($self->{raw}, "\r\n\r\n");
        return if $i < 0;
        my $head = substr($self->{raw}, 0, $i + 4, '');
        ($self->{status}, $self->{headers})
            = StarlingTest::parse_head(substr($head, 0, -4));
        $self->{head_done} = 1;
        $self->{chunked} = (($self->{headers}{'transfer-encoding'} // '')
                            =~ /chunked/i);
    }
    if ($self->{chunked}) {
        while ($self->{raw} =~ /^([0-9a-fA-F]+)\r\n/) {
            my $n = hex $1;
            my $hl = length($1) + 2;
            if ($n == 0) {
                $self->{raw} = '';
                $self->{done} = 1;
                last;
            }
            last if length($self->{raw}) < $hl + $n + 2;
            $self->{buf} .= substr($self->{raw}, $hl, $n);
            substr($self->{raw}, 0, $hl + $n + 2, '');
        }
    } else {
        $self->{buf} .= $self->{raw};
        $self->{raw} = '';
    }
}

# next SSE event { event, data, json, t } or undef at end/timeout
sub next_event {
    my ($self, $timeout) = @_;
    $timeout //= 30;
    my $deadline = time + $timeout;
    while (1) {
        my $i = index($self->{buf}, "\n\n");
        if ($i >= 0) {
            my $block = substr($self->{buf}, 0, $i + 2, '');
            my %e = (t => time);
            for my $line (split /\n/, $block) {
                if ($line =~ /^event: (.*)$/) { $e{event} = $1; }
                elsif ($line =~ /^data: (.*)$/) { $e{data} = $1; }
            }
            $e{json} = StarlingTest::json_decode($e{data})
                if defined $e{data} && $e{data} ne '[DONE]';
            push @{$self->{events}}, \%e;
            return \%e;
        }
        return if $self->{done} || $self->{eof};
        my $left = $deadline - time;
        return if $left <= 0;
        $self->fill($left);
    }
}

# non-SSE body (error replies): read everything
sub rest {
    my ($self, $timeout) = @_;
    1 while $self->fill($timeout // 10);
    return $self->{buf};
}

sub close {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}

1;
