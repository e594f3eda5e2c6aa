// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title TestUptoProxy - a dev/test stand-in for the x402 upto Permit2 proxy.
/// @notice The x402 `upto` scheme pays through a proxy contract that is the Permit2 spender of
///         the client's signature and may transfer any amount up to the signed maximum, only to
///         the signed recipient and only when called by the signed facilitator. That contract
///         ships in no package (only its address and ABI do), so this one is written for passgate's
///         tests from the scheme's rules: the same `settle` ABI and the same revert names, for the
///         same checks. It is not the audited production contract.
/// @dev The dev chain installs the *runtime* bytecode at the proxy's canonical address with
///      `anvil_setCode`: no constructor runs there, so Permit2's canonical address is a constant
///      and the re-entrancy flag uses storage that starts at zero.
contract TestUptoProxy {
    address public constant PERMIT2 = 0x000000000022D473030F116dDEE9F6B43aC78BA3;

    /// @dev The witness Permit2 hashes into the signed message (EIP-712 struct `Witness`).
    string public constant WITNESS_TYPE = "Witness(address to,address facilitator,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256(bytes(WITNESS_TYPE));
    /// @dev Permit2 appends this to "PermitWitnessTransferFrom(TokenPermissions permitted,address
    ///      spender,uint256 nonce,uint256 deadline," to build the full type of the signature.
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";

    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    error AmountExceedsPermitted();
    error UnauthorizedFacilitator();
    error PaymentTooEarly();
    error InvalidOwner();
    error InvalidDestination();
    error Reentrancy();

    event Settled();

    uint256 private _entered;

    /// @notice Moves `amount` (at most the signed maximum) from `owner` to `witness.to` through
    ///         Permit2; only the facilitator the client named may call it. Permit2 checks the
    ///         signature, the deadline and the nonce (each signature settles at most once).
    function settle(
        PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external {
        if (_entered != 0) revert Reentrancy();
        _entered = 1;
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();

        bytes32 witnessHash =
            keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        IPermit2(PERMIT2).permitWitnessTransferFrom(
            permit,
            SignatureTransferDetails({to: witness.to, requestedAmount: amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
        emit Settled();
        _entered = 0;
    }
}

/// @dev The one Permit2 (SignatureTransfer) entry point the proxy calls.
interface IPermit2 {
    function permitWitnessTransferFrom(
        TestUptoProxy.PermitTransferFrom calldata permit,
        TestUptoProxy.SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external;
}
