# Sourced by nginx's auto/make after the module's objects are listed:
# the engine archive is built by the project's own Makefile (its objects
# are plain C11 and are compiled without nginx's flags).

if [ "$STARLING_LIB" = "$STARLING_ROOT/build/libstarling.a" ]; then

cat << END                                            >> $NGX_MAKEFILE

$STARLING_LIB: FORCE_STARLING_LIB
	\$(MAKE) -C $STARLING_ROOT lib

.PHONY: FORCE_STARLING_LIB
FORCE_STARLING_LIB:

END

fi
