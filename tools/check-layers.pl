#!/usr/bin/perl
# Checks the include graph against the layout (README "Layout"):
#
#   - each engine folder under src/ includes only its own layer and the
#     layers below it (base < quant < gguf < text < model < backend <
#     engine < api); backend/cpu and backend/cuda do not include each
#     other, and nothing below the backends includes them;
#   - public headers (include/starling/) include only public headers, and
#     a layer includes a public header only when it is at or above the
#     layer that implements it;
#   - the nginx glue (nginx/) includes only public headers and its own;
#   - no file outside nginx/ includes an nginx header, and nginx/config
#     puts only include/ on the glue's include path.
#
# Usage: tools/check-layers.pl [--graph]   (run from the project root)
# --graph prints "folder -> folders it includes" for every folder.
use strict;
use warnings;
use File::Find;

my $graph = @ARGV && $ARGV[0] eq '--graph';

# rank of each layer folder; folders of equal rank may not include each
# other unless they are the same folder (peers), except where the rank
# is shared by one folder only.
my %rank = (
    'src/base' => 0, 'src/quant' => 1, 'src/gguf' => 2, 'src/text' => 3,
    'src/model' => 4,
    'src/backend' => 5,
    'src/backend/cpu' => 6, 'src/backend/cpu/x86' => 6.5,
    'src/backend/cuda' => 6, 'src/backend/cuda/shim' => 5.5,
    'src/engine' => 7, 'src/api' => 8,
);
# x86 kernels sit under cpu/ but are included by cpu/ (dispatch tables):
# cpu and cpu/x86 form one backend.
my %same_backend = ('src/backend/cpu' => 'cpu', 'src/backend/cpu/x86' => 'cpu',
                    'src/backend/cuda' => 'cuda', 'src/backend/cuda/shim' => 'cuda');
# which layer implements each public header
my %public_rank = (
    'st_common.h' => 0, 'st_tokenizer.h' => 3, 'st_chat.h' => 3,
    'st_sampling.h' => 7, 'st_engine.h' => 7, 'st_api.h' => 8,
);

my @files;
find(sub {
    push @files, $File::Find::name if /\.(c|h|cu|cc)$/;
}, grep { -d } qw(src include nginx));

my (@bad, %edges);
for my $f (sort @files) {
    (my $dir = $f) =~ s{/[^/]+$}{};
    open my $fh, '<', $f or die "$f: $!";
    while (my $line = <$fh>) {
        if ($line =~ /^\s*#\s*include\s*<(ngx_[^>]+)>/ && $f !~ m{^nginx/}) {
            push @bad, "$f: includes nginx header <$1> outside nginx/";
        }
        next unless $line =~ /^\s*#\s*include\s*"([^"]+)"/;
        my $inc = $1;
        if ($inc =~ m{^starling/([^/]+)$}) {
            my $h = $1;
            $edges{$dir}{'include/starling'} = 1;
            if (!exists $public_rank{$h}) {
                push @bad, "$f: unknown public header $inc";
            } elsif (exists $rank{$dir} && $rank{$dir} < $public_rank{$h}
                     && !($dir =~ m{^src/backend} && $public_rank{$h} <= 5)) {
                push @bad, "$f: $dir includes $inc of a higher layer";
            }
            next;
        }
        if ($dir eq 'include/starling') {
            push @bad, "$f: public header includes non-public \"$inc\"";
            next;
        }
        if ($inc !~ m{/}) {
            # same-folder include
            if (-e "$dir/$inc") {
                next;
            }
            push @bad, "$f: \"$inc\" is not in $dir (use the layer path)"
                if $dir =~ m{^src/|^nginx};
            next;
        }
        (my $tdir = "src/$inc") =~ s{/[^/]+$}{};
        if (!-e "src/$inc") {
            push @bad, "$f: \"$inc\" does not exist under src/";
            next;
        }
        $edges{$dir}{$tdir} = 1 if $tdir ne $dir;
        if ($dir =~ m{^nginx}) {
            push @bad, "$f: glue includes engine-internal \"$inc\"";
            next;
        }
        next unless exists $rank{$dir};
        if (!exists $rank{$tdir}) {
            push @bad, "$f: includes \"$inc\" from unknown folder $tdir";
            next;
        }
        next if $tdir eq $dir;
        my ($a, $b) = ($same_backend{$dir}, $same_backend{$tdir});
        next if defined $a && defined $b && $a eq $b;
        if (defined $a && defined $b && $a ne $b) {
            push @bad, "$f: backend $a includes backend $b (\"$inc\")";
            next;
        }
        if ($rank{$tdir} >= $rank{$dir}) {
            push @bad, "$f: $dir includes \"$inc\" from $tdir (not a lower layer)";
        }
    }
    close $fh;
}

# the glue's include path
if (open my $cfg, '<', 'nginx/config') {
    local $/;
    my $c = <$cfg>;
    if ($c =~ /ngx_module_incs="([^"]*)"/) {
        my @incs = split ' ', $1;
        for my $i (@incs) {
            push @bad, "nginx/config: ngx_module_incs has $i (only include/)"
                unless $i eq '$ngx_addon_dir/include';
        }
    } else {
        push @bad, "nginx/config: no ngx_module_incs";
    }
}

if ($graph) {
    for my $d (sort keys %edges) {
        print "$d -> ", join(', ', sort keys %{$edges{$d}}), "\n";
    }
}

if (@bad) {
    print "layers: $_\n" for @bad;
    print "layers: ", scalar(@bad), " violation(s)\n";
    exit 1;
}
print "layers: include graph follows the layout (", scalar(@files), " files)\n";
exit 0;
